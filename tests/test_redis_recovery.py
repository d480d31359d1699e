"""Shared recovery beside the Redis broker (tornado_websockets.redis.recovery): it reads the paths
of the server it was started for, handed down, never the process-wide default's."""

from __future__ import annotations

import redis

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tornado_websockets.broker import Envelope
from tornado_websockets.redis.broker import CONNECTED, RedisBroker
from tornado_websockets.redis.channels import SingleChannel
from tornado_websockets.redis.recovery import emit_arguments, stored_envelope
from tornado_websockets.redis.replay import ReplayKeys
from tornado_websockets.server import Server
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket


async def test_the_paths_declared_are_those_of_the_server_the_broker_serves(
    redis_server: RedisServer,
) -> None:
    mine = Server()
    WebSocket("/mine", server=mine, recover=60, recover_size=10)
    WebSocket("/default", recover=30)  # the process-wide default server's, not this broker's
    broker = RedisBroker(redis_server.url, presence=False)
    await broker.start(mine)
    try:
        await wait_until(lambda: broker.state == CONNECTED and broker.replay_ready)
        admin = redis.Redis.from_url(redis_server.url)
        declared = admin.hgetall(ReplayKeys(broker.channel, "/mine").conf)
        admin.close()
    finally:
        await broker.stop()
    assert declared == {b"/mine": b"60 10"}
    assert "/default" in TornadoWrapper.websockets


def test_emit_arguments_carry_the_bounds_given() -> None:
    envelope = Envelope("/p", b'{"event":"e","data":{}}', "lobby", numbered=True)
    keys, args = emit_arguments(SingleChannel(), "C", envelope, "60 10")
    assert keys == [
        "C:recover",
        "C:replay:/p:lobby:seq",
        "C:replay:/p:lobby:frames",
        "C:replay:/p:lobby:base",
    ]
    assert args[0] == "C"
    assert args[3:] == ["/p", b'"lobby"', 86_400_000, "60 10", "PUBLISH"]


def test_a_stored_frame_without_its_header_is_rebuilt_from_its_stream() -> None:
    assert stored_envelope("/p", "lobby", 7, {b"f": b"{}"}) == Envelope("/p", b"{}", "lobby", seq=7)
    assert stored_envelope("/p", "*", 7, {b"f": b"{}"}) == Envelope("/p", b"{}", None, seq=7)
