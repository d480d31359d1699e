"""Binary payloads (docs/protocol.rst): MessagePack frames as pure data, then real clients of a real
server, negotiated (``tornado-websockets.msgpack``) and not, in and out of event functions."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import msgspec
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tornado_websockets import binaryframes, delivery, protocol
from tornado_websockets.broker_redis import CONNECTED, RedisBroker
from tornado_websockets.emitter import Emitter
from tornado_websockets.exceptions import ProtocolError
from tornado_websockets.limits import Limits
from tornado_websockets.recovery import ReplayBuffer, with_sequence
from tornado_websockets.testing import TestServer, serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

MSGPACK = Subprotocol(binaryframes.SUBPROTOCOL)


class Upload(TypedDict):
    name: str
    content: bytes


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


# Pure data ----------------------------------------------------------------------------------------


def test_a_frame_with_bytes_is_messagepack_and_one_without_stays_json() -> None:
    assert protocol.encode("e", {"n": 1}) == b'{"event":"e","data":{"n":1}}'
    frame = protocol.encode("thumb", {"png": b"\x89PN"})
    # The example of docs/protocol.rst, byte for byte.
    assert frame.hex(" ") == (
        "82 a5 65 76 65 6e 74 a5 74 68 75 6d 62 a4 64 61 74 61 81 a3 70 6e 67 c4 03 89 50 4e"
    )
    assert binaryframes.is_packed(frame)
    assert not binaryframes.is_packed(b'{"event":"e"}')
    assert binaryframes.as_text(frame) == b'{"event":"thumb","data":{"png":"iVBO"}}'


def test_bytes_anywhere_and_what_json_lacks_are_converted_as_json_converts_them() -> None:
    import datetime

    data = {"a": [1, {"b": bytearray(b"x")}], "t": (memoryview(b"yz"),), "when": datetime.date(2020, 1, 2)}
    decoded = msgspec.msgpack.decode(protocol.encode("e", data))
    assert decoded == {"event": "e", "data": {"a": [1, {"b": b"x"}], "t": [b"yz"], "when": "2020-01-02"}}
    reply = msgspec.msgpack.decode(protocol.ack_frame(7, b"raw"))
    assert reply == {"event": "ack", "id": 7, "data": b"raw"}


def test_a_numbered_messagepack_frame_carries_stream_and_seq() -> None:
    frame = with_sequence(protocol.encode("e", {"b": b"\x00"}), "lobby", 2**52 + 3)
    assert msgspec.msgpack.decode(frame) == {
        "event": "e",
        "data": {"b": b"\x00"},
        "stream": "lobby",
        "seq": 2**52 + 3,
    }
    buffer = ReplayBuffer(60)
    kept = buffer.append("*", protocol.encode("e", {"b": b"\x01"}))
    assert msgspec.msgpack.decode(kept)["seq"] == 1
    assert buffer.since("*", 0).frames == [kept]


@pytest.mark.parametrize(
    ("message", "warning"),
    [
        (b"\xc1", binaryframes.INVALID_MSGPACK),  # never used
        (b"\x81\xa5event", binaryframes.INVALID_MSGPACK),  # truncated
        (msgspec.msgpack.encode({"event": "e"}) + b"\x00", binaryframes.INVALID_MSGPACK),  # trailing
        (msgspec.msgpack.encode({1: "e"}), binaryframes.INVALID_MSGPACK),  # a key that is no str
        (b"\x81\xa5event\xd6\xff\x00\x00\x00\x00", binaryframes.INVALID_MSGPACK),  # a timestamp ext
        (msgspec.msgpack.encode([1]), protocol.NOT_AN_OBJECT),
        (msgspec.msgpack.encode({"event": 3}), protocol.EVENT_NOT_STRING),
        (msgspec.msgpack.encode({"event": "e", "data": b"x"}), protocol.DATA_NOT_DICT),
    ],
)
def test_a_binary_message_that_is_no_frame_is_refused_with_a_warning(message: bytes, warning: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        protocol.decode(message, packed=True)
    assert raised.value.message == warning


def test_a_client_frame_with_bytes_decodes_to_bytes() -> None:
    message = msgspec.msgpack.encode({"event": "up", "data": {"f": {"c": b"\x00\xff"}}, "id": "r1"})
    assert protocol.decode(message, packed=True) == protocol.Frame("up", {"f": {"c": b"\x00\xff"}}, "r1")


# Real clients -------------------------------------------------------------------------------------


async def frame_of(client: ClientConnection) -> tuple[str, dict[str, Any]]:
    """The next message: ("binary" or "text", the decoded frame)."""
    message = await asyncio.wait_for(client.recv(), 10)
    if isinstance(message, bytes):
        return "binary", msgspec.msgpack.decode(message)
    return "text", json.loads(message)


@asynccontextmanager
async def connect(server: TestServer, path: str, binary: bool = True) -> AsyncIterator[ClientConnection]:
    protocols = [MSGPACK] if binary else None
    async with websockets.connect(server.url(path), subprotocols=protocols, max_size=None) as client:
        yield client


def files_app() -> WebSocket:
    ws = WebSocket("/files")

    @ws.on
    async def upload(socket: WebSocketHandler, data: dict[str, Any]) -> dict[str, Any]:
        content = data["file"]["content"]
        assert isinstance(content, bytes)
        socket.emit("thumb", {"png": content[:4], "name": data["file"]["name"]})
        return {"size": len(content), "head": content[:2]}

    @ws.on
    async def gift(socket: WebSocketHandler) -> bytes:
        socket.emit("gift", {"b": b"\x00\x01"})
        return b"\x02"

    @ws.on
    async def everyone(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        ws.emit("all", {"b": data["b"]})

    @ws.on
    async def join(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.join(data["room"])

    @ws.on
    async def room(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        ws.to(data["room"]).emit("in_room", {"b": data["b"]})

    return ws


async def test_bytes_reach_the_function_and_come_back_as_bytes_to_a_client_that_negotiated() -> None:
    files_app()
    async with serve() as server, connect(server, "/files") as client:
        assert client.subprotocol == MSGPACK
        content = bytes(range(256)) * 4
        request = {"event": "upload", "data": {"file": {"name": "a.png", "content": content}}, "id": 1}
        await client.send(msgspec.msgpack.encode(request))
        assert await frame_of(client) == (
            "binary",
            {"event": "thumb", "data": {"png": content[:4], "name": "a.png"}},
        )
        assert await frame_of(client) == (
            "binary",
            {"event": "ack", "id": 1, "data": {"size": 1024, "head": b"\x00\x01"}},
        )
        # A frame without bytes stays JSON text, both ways, on the same connection.
        await client.send(json.dumps({"event": "nothing"}))
        kind, warning = await frame_of(client)
        assert (kind, warning["event"]) == ("text", "warning")


async def test_a_client_that_did_not_negotiate_gets_base64_text_and_never_a_binary_message() -> None:
    files_app()
    async with serve() as server, connect(server, "/files", binary=False) as plain:
        assert plain.subprotocol is None
        # To this very socket, and its reply: base64 strings in JSON text.
        await plain.send(json.dumps({"event": "gift", "id": 2}))
        assert await frame_of(plain) == ("text", {"event": "gift", "data": {"b": "AAE="}})
        assert await frame_of(plain) == ("text", {"event": "ack", "id": 2, "data": "Ag=="})
        await plain.send(json.dumps({"event": "everyone", "data": {"b": "x"}}))
        # The ack, and the broadcast of a str: text. Now bytes from another, MessagePack client:
        async with connect(server, "/files") as other:
            await other.send(msgspec.msgpack.encode({"event": "everyone", "data": {"b": PNG}}))
            assert await frame_of(other) == ("binary", {"event": "all", "data": {"b": PNG}})
        frames = [await frame_of(plain) for _ in range(2)]
        assert frames[0] == ("text", {"event": "all", "data": {"b": "x"}})
        assert frames[1][1] == {"event": "all", "data": {"b": base64.b64encode(PNG).decode()}}


async def test_a_broadcast_with_bytes_is_encoded_once_per_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    ws = files_app()
    async with (
        serve() as server,
        connect(server, "/files") as a,
        connect(server, "/files") as b,
        connect(server, "/files", binary=False) as c,
        connect(server, "/files", binary=False) as d,
    ):
        await wait_until(lambda: len(ws.handlers) == 4)
        packed_before = binaryframes.as_text.cache_info().misses
        encoded: list[bytes] = []
        original = binaryframes.pack

        def counting(frame: dict[str, Any]) -> bytes:
            encoded.append(original(frame))
            return encoded[-1]

        monkeypatch.setattr(binaryframes, "pack", counting)
        for client in (a, c):
            await client.send(json.dumps({"event": "join", "data": {"room": "r"}}))
        await b.send(json.dumps({"event": "join", "data": {"room": "r"}}))
        await d.send(json.dumps({"event": "join", "data": {"room": "r"}}))
        await wait_until(lambda: len(ws.rooms.members("r")) == 4)
        ws.emit("all", {"b": b"one"})
        ws.to("r").emit("in_room", {"b": b"two"})
        monkeypatch.undo()
        for client in (a, b):
            assert [await frame_of(client) for _ in range(2)] == [
                ("binary", {"event": "all", "data": {"b": b"one"}}),
                ("binary", {"event": "in_room", "data": {"b": b"two"}}),
            ]
        for client in (c, d):
            assert [await frame_of(client) for _ in range(2)] == [
                ("text", {"event": "all", "data": {"b": "b25l"}}),
                ("text", {"event": "in_room", "data": {"b": "dHdv"}}),
            ]
        assert len(encoded) == 2  # once per emit for the MessagePack clients
        assert binaryframes.as_text.cache_info().misses - packed_before == 2  # once per emit for JSON ones


async def test_a_bad_binary_message_earns_a_warning_and_the_connection_stays_usable() -> None:
    files_app()
    async with serve() as server, connect(server, "/files") as client:
        await client.send(b"\xc1\xc1")
        assert await frame_of(client) == (
            "text",
            {"event": "warning", "data": {"message": binaryframes.INVALID_MSGPACK}},
        )
        await client.send(msgspec.msgpack.encode({"event": "upload", "data": [], "id": 9}))
        assert (await frame_of(client))[1]["data"]["message"] == protocol.DATA_NOT_DICT
        assert (await frame_of(client))[1] == {
            "event": "ack",
            "id": 9,
            "error": {"message": protocol.DATA_NOT_DICT},
        }
        await client.send(msgspec.msgpack.encode({"event": "everyone", "data": {"b": b"ok"}}))
        assert await frame_of(client) == ("binary", {"event": "all", "data": {"b": b"ok"}})


async def test_max_message_size_and_the_rate_limit_count_binary_messages() -> None:
    ws = WebSocket("/small", limits=Limits(max_message_size=1024, max_rate=5, burst=2))

    @ws.on
    async def ping_me(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("pong_me", {"b": data["b"]})

    async with serve() as server:
        async with connect(server, "/small") as client:
            for _ in range(10):
                await client.send(msgspec.msgpack.encode({"event": "ping_me", "data": {"b": b"x"}}))
            frames: list[tuple[str, dict[str, Any]]] = []

            async def read_until_closed() -> None:
                while True:
                    frames.append(await frame_of(client))

            with pytest.raises(websockets.ConnectionClosed):
                await read_until_closed()
            warnings = [f["data"]["message"] for _, f in frames if f["event"] == "warning"]
            assert "Too many events" in warnings[0]
        async with connect(server, "/small") as client:
            await client.send(msgspec.msgpack.encode({"event": "ping_me", "data": {"b": bytes(2048)}}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await frame_of(client)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009


def recovering_app() -> WebSocket:
    ws = WebSocket("/rec", recover=60)

    @ws.on
    async def open(socket: WebSocketHandler) -> None:
        socket.join("lobby")

    @ws.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        ws.to("lobby").emit("said", data)

    return ws


async def position_of(client: ClientConnection, stream: str) -> dict[str, Any]:
    while True:
        _, frame = await frame_of(client)
        if frame["event"] == "stream" and frame["data"]["stream"] == stream:
            return dict(frame["data"])


async def recover(server: TestServer, path: str, position: dict[str, Any], binary: bool) -> ClientConnection:
    request = {
        "epoch": position["epoch"],
        "streams": {"lobby": position["seq"]},
        "tokens": {"lobby": position["token"]},
    }
    url = server.url(path) + "?recover=" + urllib.parse.quote(json.dumps(request))
    return await websockets.connect(url, subprotocols=[MSGPACK] if binary else None, max_size=None)


async def missed(client: ClientConnection, count: int) -> list[tuple[str, dict[str, Any]]]:
    frames = []
    while len(frames) < count:
        kind, frame = await frame_of(client)
        if frame["event"] == "said":
            frames.append((kind, frame))
    return frames


async def test_numbered_binary_frames_are_replayed_like_the_others() -> None:
    recovering_app()
    async with serve() as server:
        async with connect(server, "/rec") as talker, connect(server, "/rec") as reader:
            position = await position_of(reader, "lobby")
            await position_of(talker, "lobby")
            await reader.close()
            await talker.send(json.dumps({"event": "say", "data": {"n": 0}}))
            await talker.send(msgspec.msgpack.encode({"event": "say", "data": {"n": 1, "b": b"\x01"}}))
            await missed(talker, 2)
        back = await recover(server, "/rec", position, binary=True)
        plain = await recover(server, "/rec", position, binary=False)
        try:
            seq = position["seq"]
            assert await missed(back, 2) == [
                ("text", {"event": "said", "data": {"n": 0}, "stream": "lobby", "seq": seq + 1}),
                (
                    "binary",
                    {"event": "said", "data": {"n": 1, "b": b"\x01"}, "stream": "lobby", "seq": seq + 2},
                ),
            ]
            assert (await missed(plain, 2))[1] == (
                "text",
                {"event": "said", "data": {"n": 1, "b": "AQ=="}, "stream": "lobby", "seq": seq + 2},
            )
        finally:
            await back.close()
            await plain.close()


async def test_binary_frames_through_redis_are_numbered_delivered_and_replayed(
    redis_server: RedisServer,
) -> None:
    recovering_app()
    broker = TornadoWrapper.use_broker(RedisBroker(redis_server.url))
    async with serve() as server:
        await wait_until(lambda: broker.state == CONNECTED and broker.replay_ready)
        async with connect(server, "/rec") as reader:
            position = await position_of(reader, "lobby")
            with Emitter(redis_server.url) as emitter:
                assert await asyncio.to_thread(emitter.emit, "/rec", "said", {"b": PNG}, room="lobby") == 1
            [(kind, frame)] = await missed(reader, 1)
            assert (kind, frame) == (
                "binary",
                {"event": "said", "data": {"b": PNG}, "stream": "lobby", "seq": position["seq"] + 1},
            )
            await reader.send(msgspec.msgpack.encode({"event": "say", "data": {"b": b"\x02"}}))
            await missed(reader, 1)
        back = await recover(server, "/rec", position, binary=True)
        try:
            assert [f["data"] for _, f in await missed(back, 2)] == [{"b": PNG}, {"b": b"\x02"}]
        finally:
            await back.close()
    assert delivery.dropped() == {}


async def test_the_test_client_sends_bytes_as_base64_as_a_client_without_messagepack_does() -> None:
    ws = WebSocket("/typed")

    @ws.on
    async def size(data: Upload) -> int:
        return len(data["content"])

    @ws.on
    async def store(socket: WebSocketHandler, data: Upload) -> None:
        socket.emit("stored", {"content": data["content"]})

    async with serve() as server, server.connect("/typed") as client:
        assert await client.request("size", {"name": "a", "content": b"\x00\x01\x02"}) == 3
        await client.emit("store", {"name": "a", "content": b"\xff"})
        assert await client.wait_for("stored") == {"content": "/w=="}


async def test_without_msgspec_the_subprotocol_is_refused_naming_the_extra_and_bytes_go_as_base64(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # msgspec is installed here; the binary extra missing is what this stands for.
    monkeypatch.setattr(binaryframes, "msgspec", None)
    assert protocol.encode("e", {"b": b"\x00"}) == b'{"event":"e","data":{"b":"AA=="}}'
    files_app()
    async with serve() as server, connect(server, "/files") as client:
        assert client.subprotocol is None
        assert "install the binary extra" in caplog.text
        await client.send(json.dumps({"event": "gift", "id": 1}))
        assert await frame_of(client) == ("text", {"event": "gift", "data": {"b": "AAE="}})
        assert await frame_of(client) == ("text", {"event": "ack", "id": 1, "data": "Ag=="})
