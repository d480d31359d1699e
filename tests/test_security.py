"""Security properties over real sockets: origins, dispatch by explicit registry only, no leaks."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tornado.httpclient

from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


async def test_standalone_tornado_refuses_a_foreign_origin() -> None:
    WebSocket("/origin")
    async with serve() as server:
        with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
            await server.connect("/origin", headers={"Origin": "https://evil.example"})
        assert caught.value.code == 403
        same = f"http://127.0.0.1:{server.port}"
        async with server.connect("/origin", headers={"Origin": same}):
            pass


@pytest.mark.parametrize(
    "event",
    ["emit", "close", "on_message", "write_message", "__class__", "__init__", "initialize", "open", "join"],
)
async def test_a_frame_reaches_only_bound_events_never_attributes(event: str) -> None:
    ws = WebSocket("/registry")
    calls: list[str] = []

    @ws.on
    async def ping(socket: WebSocketHandler) -> None:
        calls.append("ping")
        socket.emit("pong")

    async with serve() as server, server.connect("/registry") as client:
        await client.send(json.dumps({"event": event, "data": {"event": "x", "data": {}}}))
        warning = await client.wait_for("warning")
        assert warning["event"] == event
        await client.emit("ping")
        assert await client.wait_for("pong") == {}
        assert client.buffered() == []  # nothing else was sent: no attribute was called
        assert len(ws.handlers) == 1  # "close" did not close it
    assert calls == ["ping"]


async def test_error_frames_carry_no_traceback_or_exception_text() -> None:
    ws = WebSocket("/leak")

    @ws.on
    def crash(data: dict[str, Any]) -> None:
        raise ValueError(f"/etc/passwd at {data}")

    async with serve() as server, server.connect("/leak") as client:
        await client.emit("crash", {"secret": "token-123"})
        frame = await client.receive()
        text = json.dumps(frame.data)
        for leaked in ("Traceback", "ValueError", "passwd", "token-123", ".py"):
            assert leaked not in text
