"""Presence over real sockets: who is here, from the loop and other threads; joined/left once per user."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.polling import wait_until
from tornado_websockets.presence import Member, Presence
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import CONNECT_HOOK_SETTING, WebSocketHandler


async def identify(socket: WebSocketHandler) -> None:
    socket.user_id = socket.request.headers.get("X-User")


SETTINGS = {CONNECT_HOOK_SETTING: identify}


def test_presence_counts() -> None:
    presence = Presence(
        (
            Member("c1", "ann", "ann", "p"),
            Member("c2", "ann", "ann", "p"),
            Member("c3", None, None, "p"),
            Member("c4", "bob", "bob", "q"),
        )
    )
    assert (presence.connections, presence.anonymous) == (4, 1)
    assert presence.users == {"ann": ["c1", "c2"], "bob": ["c4"]}
    assert presence.as_dict()["users"] == 2


def room_app(**kwargs: Any) -> WebSocket:
    ws = WebSocket("/room/<name>", **kwargs)

    @ws.on
    async def open(socket: WebSocketHandler) -> None:
        socket.join(socket.path_params["name"])

    @ws.on
    async def who(socket: WebSocketHandler) -> dict[str, Any]:
        return (await ws.presence(socket.path_params["name"])).as_dict()

    return ws


async def test_presence_of_a_room_and_of_the_path() -> None:
    ws = room_app()
    async with serve(tornado_settings=SETTINGS) as server:
        ann1 = await server.connect("/room/a", headers={"X-User": "ann"})
        ann2 = await server.connect("/room/a", headers={"X-User": "ann"})
        anonymous = await server.connect("/room/a")
        bob = await server.connect("/room/b", headers={"X-User": "bob"})
        await wait_until(lambda: len(ws.handlers) == 4)
        who = await ann1.request("who")
        assert (who["connections"], who["users"], who["anonymous"]) == (3, 1, 1)
        assert {m["name"] for m in who["members"]} == {"ann", None}
        everyone = await ws.presence()
        assert set(everyone.users) == {"ann", "bob"}
        from_thread = await asyncio.to_thread(ws.presence_sync, "b")
        assert from_thread.users == {"bob": [ws.rooms.members("b")[0].id]}
        with pytest.raises(RuntimeError, match=r"await ws\.presence"):
            ws.presence_sync()
        for client in (ann1, ann2, anonymous, bob):
            client.close()


def test_presence_sync_without_a_server_says_so() -> None:
    ws = WebSocket("/nobody")
    with pytest.raises(RuntimeError, match="No server runs in this process"):
        ws.presence_sync()


async def test_joined_and_left_once_per_user_not_per_tab() -> None:
    ws = room_app(presence_events=True)
    async with serve(tornado_settings=SETTINGS) as server:
        watcher = await server.connect("/room/a", headers={"X-User": "watcher"})
        await wait_until(lambda: len(ws.handlers) == 1)
        tab1 = await server.connect("/room/a", headers={"X-User": "ann"})
        assert await watcher.wait_for("joined") == {"room": "a", "user": "ann", "name": "ann"}
        tab2 = await server.connect("/room/a", headers={"X-User": "ann"})
        await wait_until(lambda: len(ws.handlers) == 3)
        tab1.close()
        await wait_until(lambda: len(ws.handlers) == 2)
        tab2.close()
        assert await watcher.wait_for("left") == {"room": "a", "user": "ann", "name": "ann"}
        assert [frame.event for frame in watcher.buffered()] == []  # one joined, one left: not per tab
        anonymous = await server.connect("/room/a")
        joined = await watcher.wait_for("joined")
        assert joined["user"] is None
        anonymous.close()
        assert (await watcher.wait_for("left"))["user"] is None
        watcher.close()
