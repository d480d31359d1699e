"""The testing helpers users get: serve(), connect(), emit, receive, wait_for, timeouts."""

from __future__ import annotations

from typing import Any

import pytest

from tornado_websockets.testing import TestServer, serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


def test_urls() -> None:
    server = TestServer(8123, "127.0.0.1")
    assert server.url("/chat") == "ws://127.0.0.1:8123/ws/chat"
    assert server.url("chat") == "ws://127.0.0.1:8123/ws/chat"
    assert server.http_url() == "http://127.0.0.1:8123/"


async def test_wait_for_keeps_other_frames_in_order() -> None:
    ws = WebSocket("/burst")

    @ws.on
    async def burst(socket: WebSocketHandler) -> None:
        for event in ("a", "b", "target", "c"):
            socket.emit(event, {"name": event})

    async with serve() as server, server.connect("/burst") as client:
        await client.emit("burst")
        assert await client.wait_for("target") == {"name": "target"}
        assert [(await client.receive()).event for _ in range(3)] == ["a", "b", "c"]


async def test_wait_for_times_out_with_what_it_saw() -> None:
    ws = WebSocket("/quiet")

    @ws.on
    async def other(socket: WebSocketHandler) -> None:
        socket.emit("other")

    async with serve() as server:
        client = await server.connect("/quiet")  # plain await works too
        await client.emit("other")
        with pytest.raises(TimeoutError, match=r'No "never" event within 0.3s.*other'):
            await client.wait_for("never", timeout=0.3)
        client.close()


async def test_serve_uses_a_free_loopback_port_and_cleans_up() -> None:
    WebSocket("/x")
    async with serve() as server:
        assert server.port == TornadoWrapper.tornado_port
        assert server.port > 0
        assert server.address == "127.0.0.1"
    assert TornadoWrapper.tornado_server is None


async def test_receive_reports_a_closed_connection() -> None:
    ws = WebSocket("/closing")

    @ws.on
    async def leave(socket: Any) -> None:
        socket.close(4000, "bye")

    async with serve() as server, server.connect("/closing") as client:
        await client.emit("leave")
        with pytest.raises(ConnectionError, match="4000"):
            await client.receive()
