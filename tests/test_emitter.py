"""Emitter: emits from a process without a server, through a real redis-server, to a real server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.servers import free_port
from tornado_websockets import delivery
from tornado_websockets.broker import Envelope
from tornado_websockets.broker_redis import CONNECTED, DEFAULT_CHANNEL, RedisBroker
from tornado_websockets.emitter import Emitter
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


def chat_app() -> WebSocket:
    chat = WebSocket("/chat")

    @chat.on
    async def join(socket: WebSocketHandler, data: dict[str, Any]) -> str:
        socket.join(data["room"])
        return socket.id

    @chat.on
    async def whoami(socket: WebSocketHandler) -> str:
        return socket.id

    return chat


async def test_an_emitter_reaches_the_server_as_ws_emit_would(redis_server: RedisServer) -> None:
    chat_app()
    broker = RedisBroker(redis_server.url)
    TornadoWrapper.use_broker(broker)
    async with serve() as server, server.connect("/chat") as ann, server.connect("/chat") as bob:
        ann_id = await ann.request("join", {"room": "lobby"})
        bob_id = await bob.request("whoami")
        await wait_until(lambda: broker.state == CONNECTED)
        with Emitter(redis_server.url) as emitter:
            # The path as a WebSocket normalizes it, data as ws.emit takes it.
            assert await asyncio.to_thread(emitter.emit, " chat ", "news", "hello", room="lobby") == 1
            assert await ann.wait_for("news") == {"message": "hello"}
            await asyncio.to_thread(emitter.emit, "/chat", "all", None, skip=ann_id)
            assert (await bob.receive()).event == "all"  # bob was not in the lobby: "all" comes first
            await asyncio.to_thread(emitter.emit, "/chat", "all", {"n": 2}, skip=bob_id)
            frame = await ann.receive()
            assert (frame.event, frame.data) == ("all", {"n": 2})  # ann was skipped the first time
    assert delivery.dropped() == {}


async def test_an_emitter_publishes_the_envelope_ws_emit_publishes(redis_server: RedisServer) -> None:
    received: list[Envelope] = []
    listener = RedisBroker(redis_server.url)
    await listener.start(received.append)
    chat = chat_app()
    broker = TornadoWrapper.use_broker(RedisBroker(redis_server.url))
    try:
        async with serve():
            await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2)
            data = {"text": "é ✓", "items": [1, 2.5, None]}
            chat.emit("news", data, room="lobby", skip="c1")
            await wait_until(lambda: len(received) == 1)
            with Emitter(redis_server.url) as emitter:
                await asyncio.to_thread(emitter.emit, "/chat", "news", data, room="lobby", skip="c1")
            await wait_until(lambda: len(received) == 2)
    finally:
        await listener.stop()
    from_server, from_emitter = received
    assert from_server.origin == broker.id
    assert from_emitter.origin == emitter.id != broker.id  # so that no server skips it as its own
    assert from_emitter == Envelope(from_server.path, from_server.frame, "lobby", "c1", emitter.id)


def test_channel_from_the_url_or_the_argument(redis_server: RedisServer) -> None:
    with redis_server.client() as client, client.pubsub() as pubsub:
        pubsub.subscribe("app")
        assert Emitter(redis_server.url + "?channel=app").emit("/chat", "x") == 1
        assert Emitter(redis_server.url, channel="app").emit("/chat", "x") == 1
        assert Emitter(redis_server.url).emit("/chat", "x") == 0  # the default channel: nobody listens


def test_close_releases_the_connection_and_emit_opens_another(redis_server: RedisServer) -> None:
    def connections() -> int:
        with redis_server.client() as client:
            return len(client.client_list()) - 1

    emitter = Emitter(redis_server.url)
    emitter.emit("/chat", "x")
    assert connections() == 1
    emitter.close()
    deadline = time.monotonic() + 5
    while connections() and time.monotonic() < deadline:
        time.sleep(0.01)  # Redis notices the closed socket on its own time
    assert connections() == 0
    emitter.emit("/chat", "x")
    assert connections() == 1
    emitter.close()


def test_redis_down_is_counted_not_raised() -> None:
    with Emitter(f"redis://127.0.0.1:{free_port()}/0") as emitter:
        assert emitter.emit("chat", "news", {"title": "lost"}) == 0
        assert emitter.emit("chat", "news", {"title": "lost"}) == 0
    assert delivery.dropped() == {(delivery.BACKPLANE_UNREACHABLE, "/chat"): 2}


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("/chat", 3), {}, "Event should be a str"),
        (("/chat", "news", ["a"]), {}, "Data should be a dict, a str or None"),
        (("/chat", "news"), {"room": ""}, "room should be a non-empty str"),
        (("/chat", "news"), {"skip": object()}, "skip should be a connection id"),
        ((b"/chat", "news"), {}, "path should be a str"),
    ],
)
def test_bad_arguments_are_type_errors(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with Emitter("redis://127.0.0.1:1/0") as emitter, pytest.raises(TypeError, match=message):
        emitter.emit(*args, **kwargs)


@pytest.mark.parametrize(
    ("url", "message"),
    [("memory://", "reaches no other process"), ("amqp://x", "use memory:// or redis://")],
)
def test_an_emitter_needs_a_cross_process_backplane(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Emitter(url)
