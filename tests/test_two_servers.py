"""Two `Server` objects in one process, each with its own Redis backplane, serving the same path.

docs/runtime.rst promises that ``WebSocket(path, server=Server())`` is independent of the default
server: here the non-default one does everything the default does (frames, recovery positions,
tokens and replay, presence, metrics), and nothing of one reaches the other.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tornado_websockets.broker_redis import DEFAULT_CHANNEL
from tornado_websockets.protocol import ServerFrame
from tornado_websockets.server import Server, default_server
from tornado_websockets.testing import WebSocketTestClient, serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


def chat_on(server: Server | None, label: str) -> WebSocket:
    """``/chat`` on ``server`` (the default server if None): join a room, say something in it."""
    chat = WebSocket("/chat", server=server, recover=60, presence_events=True)

    @chat.on
    async def join(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.user_id = data["user"]
        socket.join(data["room"])

    @chat.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        chat.emit("said", {"text": data["text"], "server": label}, room=data["room"])

    @chat.on
    async def online(socket: WebSocketHandler, data: dict[str, Any]) -> list[Any]:
        return sorted(str(member.user) for member in (await chat.presence(data["room"])).members)

    return chat


#: Frames `next_frame` read past, by client: checked at the end for anything of the other server.
SEEN: dict[int, list[ServerFrame]] = {}


async def next_frame(client: WebSocketTestClient, event: str) -> ServerFrame:
    """The next frame of ``event`` (with its ``seq``); the frames before it are kept in `SEEN`."""
    while True:
        frame = await client.receive()
        if frame.event == event:
            return frame
        SEEN.setdefault(id(client), []).append(frame)


async def joined(url: str, user: str, query: str = "") -> tuple[WebSocketTestClient, dict[str, Any]]:
    """A client of ``url`` that joined ``lobby`` as ``user``, and the position it was handed."""
    client = await WebSocketTestClient.connect(url + query)
    await client.request("join", {"user": user, "room": "lobby"})
    while True:
        position = await client.wait_for("stream")
        if position["stream"] == "lobby":
            return client, position


async def test_two_servers_with_their_own_redis_never_involve_each_other(tmp_path: Path) -> None:
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
    with (
        RedisServer.running(tmp_path / "one") as redis_one,
        RedisServer.running(tmp_path / "two") as redis_two,
    ):
        default = default_server()
        default.use_broker(redis_one.url)
        other = Server(broker=redis_two.url)
        chat_on(None, "default")
        chat_on(other, "other")
        async with serve() as first, serve(server=other) as second:
            await wait_until(
                lambda: (
                    redis_one.subscribers(DEFAULT_CHANNEL) == 1
                    and redis_two.subscribers(DEFAULT_CHANNEL) == 1
                )
            )
            url_one, url_two = first.url("/chat"), second.url("/chat")

            # Frames: each server's room hears its own server only.
            alice, alice_position = await joined(url_one, "alice")
            bob, bob_position = await joined(url_two, "bob")
            for position in (alice_position, bob_position):
                assert position["token"]
                assert position["epoch"]
            await bob.emit("say", {"room": "lobby", "text": "hello from two"})
            heard = await next_frame(bob, "said")
            assert heard.data == {"text": "hello from two", "server": "other"}
            await alice.emit("say", {"room": "lobby", "text": "hello from one"})
            assert await alice.wait_for("said") == {"text": "hello from one", "server": "default"}

            # Presence: joined and the online list are per server.
            carol, _ = await joined(url_two, "carol")
            assert (await bob.wait_for("joined"))["user"] == "carol"
            assert await bob.request("online", {"room": "lobby"}) == ["bob", "carol"]
            assert await alice.request("online", {"room": "lobby"}) == ["alice"]

            # Recovery on the non-default server: bob drops, misses two frames, comes back with
            # his last position and his token, and gets exactly those two, in order.
            bob.close()
            await wait_until(lambda: len(other.live_connections()) == 1)
            for text in ("missed 1", "missed 2"):
                await carol.emit("say", {"room": "lobby", "text": text})
                await carol.wait_for("said")
            request = {
                "epoch": bob_position["epoch"],
                "streams": {"lobby": heard.seq},
                "tokens": {"lobby": bob_position["token"]},
            }
            back = await WebSocketTestClient.connect(
                url_two + "?recover=" + urllib.parse.quote(json.dumps(request))
            )
            await back.request("join", {"user": "bob", "room": "lobby"})
            frames = [await next_frame(back, "said") for _ in range(2)]
            assert [(f.data["text"], f.seq) for f in frames] == [
                ("missed 1", heard.seq + 1),
                ("missed 2", heard.seq + 2),
            ]

            # Nothing of one server reached the other's clients.
            for client, server in ((alice, "default"), (carol, "other"), (back, "other")):
                frames_seen = SEEN.get(id(client), []) + client.buffered()
                assert {f.data["server"] for f in frames_seen if f.event == "said"} <= {server}
            assert not [f for f in SEEN.get(id(alice), []) + alice.buffered() if f.event == "joined"]

            # Metrics: each server counts its own connections and its own backplane.
            one, two = default.snapshot(), other.snapshot()
            assert one["paths"]["/chat"]["connections"] == 1
            assert two["paths"]["/chat"]["connections"] == 2  # carol, and bob back
            assert one["process"]["broker"] == default.broker.id != two["process"]["broker"]
            for client in (alice, carol, back):
                client.close()
