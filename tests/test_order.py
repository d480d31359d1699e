"""One order of delivery, whatever the broker: a client sees the frames of one function in the order
the function produced them (docs/events.rst, "Order of delivery")."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket


def _board(recover: float | None) -> WebSocket:
    ws = WebSocket("/board", recover=recover)

    @ws.on
    async def post(socket: Any, data: dict[str, Any]) -> str:
        ws.emit("posted", data)  # to everyone, the poster included
        socket.emit("receipt", data)  # to the poster only
        return "done"  # the reply, last

    @ws.on
    def post_from_thread(socket: Any, data: dict[str, Any]) -> str:
        ws.emit("posted", data)
        socket.emit("receipt", data)
        return "done"

    return ws


@pytest.mark.parametrize("event", ["post", "post_from_thread"])
@pytest.mark.parametrize("broker", ["memory", "redis"])
@pytest.mark.parametrize("recover", [None, 30.0], ids=["plain", "recovering"])
async def test_frames_of_one_function_arrive_in_the_order_it_made_them(
    broker: str, recover: float | None, event: str, request: pytest.FixtureRequest
) -> None:
    if broker == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        TornadoWrapper.use_broker(redis_server.url)
    _board(recover)
    async with serve() as server:
        if broker == "redis":
            await wait_until(lambda: TornadoWrapper.broker.replay_ready)  # subscribed, reads ready
        client = await server.connect("/board")
        if recover is not None:
            await client.wait_for("stream")  # the position every recovering client gets first
        for n in range(10):
            assert await client.request(event, {"n": n}) == "done"
            order = [frame.event for frame in client.buffered() if frame.event != "stream"]
            assert order == ["posted", "receipt"], (n, order)
            for _ in client.buffered():
                await client.receive()


@pytest.mark.parametrize("event", ["shout_and_leave", "shout_and_leave_from_thread"])
@pytest.mark.parametrize("broker", ["memory", "redis"])
async def test_emit_to_the_room_then_leave_keeps_the_senders_order(
    broker: str, event: str, request: pytest.FixtureRequest
) -> None:
    """Issue 22 item 6: with Redis, the sender that left waited 2 s (the order timeout) for a frame
    numbered for the room, which never came to it; its next writes waited with it."""
    if broker == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        TornadoWrapper.use_broker(redis_server.url)
    ws = WebSocket("/hall", recover=30.0)

    @ws.on
    async def enter(socket: Any) -> None:
        socket.join("hall")

    def shout(socket: Any, data: dict[str, Any]) -> str:
        ws.to("hall").emit("shout", data)
        socket.leave("hall")
        socket.emit("after", data)
        return "done"

    ws.add_event("shout_and_leave", shout, blocking=False)  # on the loop
    ws.add_event("shout_and_leave_from_thread", shout)  # in a worker thread

    async with serve() as server:
        if broker == "redis":
            await wait_until(lambda: TornadoWrapper.broker.replay_ready)
        sender, other = await server.connect("/hall"), await server.connect("/hall")
        for client in (sender, other):
            await client.request("enter")
        started = time.perf_counter()
        assert await sender.request(event, {"n": 1}) == "done"
        elapsed = time.perf_counter() - started
        print(f"\n{broker}, {event}: the sender's reply came after {elapsed * 1000:.0f} ms")  # noqa: T201
        order = [frame.event for frame in sender.buffered() if frame.event != "stream"]
        assert order == ["shout", "after"]  # its own frame too, as it was in the room when it emitted
        assert (await other.wait_for("shout")) == {"n": 1}
