"""A sender skipped by its own emit on a recovering path still sees every number of the stream.

A client takes a jump in ``seq`` for frames lost on the way and reconnects to recover them, so the
connection an emit skips gets the frame's number alone: ``{"event": "stream", "data": {"stream",
"seq", "epoch", "token"}}``. In-process numbering and numbering by Redis (shared recovery) alike.
"""

from __future__ import annotations

from typing import Any

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


def news() -> WebSocket:
    """A recovering path whose ``say`` reaches the room's other members."""
    ws = WebSocket("/news", recover=60)

    @ws.on
    async def join(socket: WebSocketHandler) -> None:
        socket.join("lobby")

    @ws.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        ws.to("lobby").emit("said", data, skip=socket)

    return ws


async def positions_of_the_sender(redis_url: str | None) -> None:
    news()
    if redis_url is not None:
        TornadoWrapper.use_broker(redis_url)
    async with serve() as server:
        if redis_url is not None:
            await wait_until(lambda: TornadoWrapper.broker.replay_ready, timeout=20)
        sender, other = await server.connect("/news"), await server.connect("/news")
        for client in (sender, other):
            await client.emit("join")
            while (position := await client.wait_for("stream"))["stream"] != "lobby":
                pass
        start = position["seq"]
        for n in range(3):
            await sender.emit("say", {"n": n})
        heard = [await other.receive() for _ in range(3)]
        assert [(frame.event, frame.data, frame.seq) for frame in heard] == [
            ("said", {"n": n}, start + 1 + n) for n in range(3)
        ]
        told = [await sender.receive() for _ in range(3)]
        assert [(frame.event, frame.data["stream"], frame.data["seq"]) for frame in told] == [
            ("stream", "lobby", start + 1 + n) for n in range(3)
        ]
        assert all(frame.data["token"] for frame in told)  # a position it may recover from
        sender.close()
        other.close()


async def test_in_process_numbering() -> None:
    await positions_of_the_sender(None)


async def test_numbering_by_redis(redis_server: RedisServer) -> None:
    await positions_of_the_sender(redis_server.url)
