"""Room bookkeeping as pure data, then rooms over real sockets."""

from __future__ import annotations

from typing import Any

import pytest

from tests.polling import wait_until
from tornado_websockets.rooms import Rooms
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


def test_join_leave_and_reverse_index() -> None:
    rooms: Rooms[str] = Rooms()
    rooms.join("lobby", "ann")
    rooms.join("lobby", "bob")
    rooms.join("lobby", "ann")  # twice is harmless
    rooms.join("games", "ann")
    assert rooms.members("lobby") == ("ann", "bob")
    assert rooms.rooms_of("ann") == {"lobby", "games"}
    assert set(rooms) == {"lobby", "games"}
    rooms.leave("lobby", "ann")
    rooms.leave("lobby", "nobody")
    rooms.leave("nowhere", "ann")
    assert rooms.members("lobby") == ("bob",)
    assert rooms.leave_all("ann") == {"games"}
    assert "games" not in rooms  # a room exists while it has members
    assert rooms.rooms_of("ann") == frozenset()
    rooms.leave("lobby", "bob")
    assert len(rooms) == 0
    assert rooms.members("lobby") == ()


@pytest.mark.parametrize("room", ["", None, 3])
def test_room_names_are_non_empty_strings(room: Any) -> None:
    with pytest.raises(TypeError, match="room name"):
        Rooms[str]().join(room, "ann")


def chat_app() -> WebSocket:
    ws = WebSocket("/chat")

    @ws.on
    async def join(socket: WebSocketHandler, data: dict[str, Any]) -> list[str]:
        socket.join(data["room"])
        return sorted(socket.rooms)

    @ws.on
    async def leave(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.leave(data["room"])

    @ws.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        skip = socket if data.get("skip_me") else None
        ws.to(data["room"]).emit("said", {"text": data["text"]}, skip=skip)

    return ws


async def test_room_emit_reaches_members_only_and_can_skip_the_sender() -> None:
    ws = chat_app()
    async with serve() as server:
        ann, bob, cid = [await server.connect("/chat") for _ in range(3)]
        for client in (ann, bob):
            assert await client.request("join", {"room": "lobby"}) == ["lobby"]
        assert await cid.request("join", {"room": "elsewhere"}) == ["elsewhere"]

        await ann.emit("say", {"room": "lobby", "text": "hi all"})
        assert await ann.wait_for("said") == {"text": "hi all"}
        assert await bob.wait_for("said") == {"text": "hi all"}

        await ann.emit("say", {"room": "lobby", "text": "not me", "skip_me": True})
        assert await bob.wait_for("said") == {"text": "not me"}
        ws.emit("marker", room="elsewhere")  # the keyword form of ws.to(room).emit
        assert await cid.wait_for("marker") == {}
        assert cid.buffered() == []  # cid never got a lobby message
        with pytest.raises(TimeoutError):
            await ann.wait_for("said", timeout=0.2)

        await bob.emit("leave", {"room": "lobby"})
        await ann.emit("say", {"room": "lobby", "text": "alone"})
        assert await ann.wait_for("said") == {"text": "alone"}
        with pytest.raises(TimeoutError):
            await bob.wait_for("said", timeout=0.2)
        for client in (ann, bob, cid):
            client.close()


async def test_a_closed_connection_leaves_all_its_rooms() -> None:
    ws = chat_app()
    async with serve() as server:
        client = await server.connect("/chat")
        assert await client.request("join", {"room": "a"}) == ["a"]
        assert await client.request("join", {"room": "b"}) == ["a", "b"]
        assert set(ws.rooms) == {"a", "b"}
        client.close()
        await wait_until(lambda: not ws.rooms)
        assert len(ws.rooms) == 0


def test_emit_checks_the_room_name() -> None:
    with pytest.raises(TypeError, match="room should be"):
        WebSocket("/x").emit("ev", room="")
