"""The backplane's old plumbing names on ``socket`` still work for one release, and say where they went."""

from __future__ import annotations

import warnings
from typing import Any

from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


async def test_the_old_names_forward_to_the_collaborators_and_warn() -> None:
    ws = WebSocket("/old")
    seen: dict[str, Any] = {}

    @ws.on
    async def probe(socket: WebSocketHandler) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            socket.expect_numbered("lobby")
            seen["awaits"] = socket.awaits_numbered("lobby")
            seen["filled"] = socket.fill_numbered(
                "lobby", lambda: socket.outbox.write(b'{"event":"n","data":{}}')
            )
            seen["after"] = socket.outbox.awaits_numbered("lobby")
            socket.write_position("lobby", 1)  # no position handed out yet: nothing written
        seen["warnings"] = [str(w.message) for w in caught if w.category is DeprecationWarning]
        socket.emit("done")

    async with serve() as server, server.connect("/old") as client:
        await client.emit("probe")
        assert await client.wait_for("n") == {}
        await client.wait_for("done")
    assert (seen["awaits"], seen["filled"], seen["after"]) == (True, True, False)
    assert len(seen["warnings"]) == 4
    assert "socket.outbox.expect_numbered()" in seen["warnings"][0]


async def test_forget_unlinks_through_the_websocket() -> None:
    ws = WebSocket("/old")
    async with serve() as server, server.connect("/old"):
        [socket] = ws.handlers
        socket.join("lobby")
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            socket.forget()
        assert ws.handlers == []
        assert ws.rooms.members("lobby") == ()
