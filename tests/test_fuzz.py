"""A live fuzz run: 10,000 random and malformed frames at a real server, which answers every one.

The frame parser alone is property-tested in test_protocol.py; here the whole path runs: socket,
handler, decode, dispatch. Text frames with invalid UTF-8 are not sent: RFC 6455 requires the
server to fail such a connection, and Tornado does; bad UTF-8 travels in binary frames instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import string
from typing import Any

import msgspec
import websockets
from tornado.websocket import WebSocketProtocol13
from websockets.typing import Subprotocol

from tornado_websockets import binaryframes
from tornado_websockets.framereader import FRAME_READER_SETTING, BulkFrameProtocol
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

FRAMES = int(os.environ.get("TWS_FUZZ_FRAMES", "10000"))


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**31, 2**63 - 1, -(2**63), 10**30, rng.randrange(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e-308, rng.random()])
    if kind in (4, 5):
        return "".join(rng.choice(string.printable + "éà☃\U0001f600\u0000") for _ in range(rng.randrange(12)))
    if kind == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {random_json_key(rng): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_json_key(rng: random.Random) -> str:
    return rng.choice(["event", "data", "message", "x", "", "__class__"])


def fuzz_frame(rng: random.Random) -> str | bytes:
    """One frame, valid or not; never with an ``id`` so that each earns exactly one reply."""
    kind = rng.randrange(12)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))  # binary garbage, bad UTF-8
    if kind == 1:
        return rng.choice(["", "{", "}", "nul", "[1,", '{"event": "echo",}', "\ufeff{}", "NaN"])
    if kind == 2:
        depth = rng.choice([10, 1000, 100_000])
        return '{"event": "echo", "data": {"deep": ' + "[" * depth + "]" * depth + "}}"
    if kind == 3:
        return '{"event": "echo", "data": {"n": ' + "9" * rng.choice([20, 400, 5000]) + "}}"
    if kind == 4:
        return json.dumps(random_json(rng))
    if kind == 5:
        return json.dumps({"event": random_json(rng), "data": random_json(rng)})
    if kind == 6:
        name = rng.choice(["open", "close", "__init__", "emit", "on_message", "write_message", "nope"])
        return json.dumps({"event": name, "data": {}})
    if kind == 7:
        return json.dumps({"event": "echo", "data": random_json(rng)}).encode()  # valid JSON, binary frame
    return json.dumps({"event": "echo", "data": {"k": random_json(rng)}})


async def test_ten_thousand_malformed_frames_each_get_a_warning_or_a_dispatch(
    reader_settings: dict[str, Any],
) -> None:
    ws = WebSocket("/fuzz")
    dispatched = 0

    @ws.on
    async def echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        nonlocal dispatched
        dispatched += 1
        socket.emit("echo", {"n": dispatched})

    @ws.on
    async def ping(socket: WebSocketHandler) -> None:
        socket.emit("pong")

    rng = random.Random(20261125)
    replies: dict[str, int] = {}

    async with (
        serve(tornado_settings=reader_settings) as server,
        server.connect("/fuzz") as fuzzer,
        server.connect("/fuzz") as bystander,
    ):

        async def send_all() -> None:
            for _ in range(FRAMES):  # made as they go: kept all at once, 100,000 frames hold 500 MB
                await fuzzer.send(fuzz_frame(rng))

        async def read_all() -> None:
            for _ in range(FRAMES):
                frame = await fuzzer.receive(timeout=30)
                replies[frame.event] = replies.get(frame.event, 0) + 1

        async def bystander_pings() -> int:
            served = 0
            while not reader.done():
                await bystander.emit("ping")
                await bystander.wait_for("pong", timeout=5)
                served += 1
            return served

        sender = asyncio.create_task(send_all())
        reader = asyncio.create_task(read_all())
        served = await bystander_pings()
        await sender
        await reader

        assert sum(replies.values()) == FRAMES
        assert set(replies) <= {"warning", "echo"}
        assert replies["echo"] == dispatched > 0
        assert replies["warning"] > FRAMES // 3
        assert served > 0  # the other client was served throughout
        await fuzzer.emit("ping")  # and the fuzzing connection itself is still usable
        assert await fuzzer.wait_for("pong") == {}
        assert len(ws.handlers) == 2
        bulk = [isinstance(handler.ws_connection, BulkFrameProtocol) for handler in ws.handlers]
        assert bulk == [reader_settings[FRAME_READER_SETTING]] * 2
        assert all(isinstance(handler.ws_connection, WebSocketProtocol13) for handler in ws.handlers)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(  # noqa: T201
            f"{FRAMES} frames fuzzed: {replies}; bystander served {served} round trips; peak RSS {peak} MiB"
        )


def fuzz_binary_frame(rng: random.Random) -> str | bytes:
    """One frame for a connection that negotiated MessagePack: JSON text, or a binary message that is
    a MessagePack frame (with bytes in it), a damaged one, or not MessagePack at all."""
    kind = rng.randrange(6)
    if kind == 0:
        return fuzz_frame(rng)  # every frame above; in a binary message it is read as MessagePack now
    data = {"k": random_json(rng), "b": os.urandom(rng.randrange(0, 3000))}
    try:
        packed = msgspec.msgpack.encode({"event": "echo", "data": data})
    except OverflowError:  # an integer MessagePack cannot hold (random_json makes some)
        packed = msgspec.msgpack.encode({"event": "echo", "data": {"b": data["b"]}})
    if kind == 1:
        return packed[: rng.randrange(len(packed))]  # truncated
    if kind == 2:
        return packed + b"\x00"  # trailing bytes
    if kind == 3:
        return msgspec.msgpack.encode(
            rng.choice([[1, 2], "echo", {"event": 3}, {"event": "echo", "data": b"x"}])
        )
    return packed


async def test_mixed_text_and_messagepack_frames_each_get_a_warning_or_a_dispatch() -> None:
    ws = WebSocket("/fuzz")
    dispatched = 0

    @ws.on
    async def echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        nonlocal dispatched
        dispatched += 1
        socket.emit("echo", {"n": dispatched, "b": data.get("b", b"")})

    rng = random.Random(20261206)
    count = max(FRAMES // 5, 100)
    replies: dict[tuple[str, str], int] = {}
    async with (
        serve() as server,
        websockets.connect(
            server.url("/fuzz"), subprotocols=[Subprotocol(binaryframes.SUBPROTOCOL)], max_size=None
        ) as fuzzer,
    ):

        async def send_all() -> None:
            for _ in range(count):
                await fuzzer.send(fuzz_binary_frame(rng))

        async def read_all() -> None:
            for _ in range(count):
                message = await asyncio.wait_for(fuzzer.recv(), 30)
                if isinstance(message, bytes):
                    frame = msgspec.msgpack.decode(message)
                    assert isinstance(frame["data"]["b"], bytes)
                    key = ("binary", frame["event"])
                else:
                    key = ("text", json.loads(message)["event"])
                replies[key] = replies.get(key, 0) + 1

        await asyncio.gather(send_all(), read_all())
        assert sum(replies.values()) == count
        assert set(replies) <= {("text", "warning"), ("text", "echo"), ("binary", "echo")}
        assert replies[("binary", "echo")] > count // 10
        assert replies[("text", "warning")] > count // 10
        assert replies[("binary", "echo")] + replies.get(("text", "echo"), 0) == dispatched
        await fuzzer.send(msgspec.msgpack.encode({"event": "echo", "data": {"b": b"still"}}))
        assert msgspec.msgpack.decode(await fuzzer.recv())["data"]["b"] == b"still"  # still usable
        print(f"{count} mixed frames fuzzed: {replies}")  # noqa: T201
