"""Missed-message recovery: the replay buffer as pure data, then a client dropping and coming back."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from tornado_websockets import protocol
from tornado_websockets.broker import Envelope
from tornado_websockets.recovery import ReplayBuffer, with_sequence
from tornado_websockets.testing import WebSocketTestClient, serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_with_sequence_extends_an_encoded_frame() -> None:
    frame = with_sequence(b'{"event":"a","data":{}}', "lobby", 7)
    assert json.loads(frame) == {"event": "a", "data": {}, "stream": "lobby", "seq": 7}


def test_numbering_and_replay_since_a_position() -> None:
    buffer = ReplayBuffer(60)
    frames = [buffer.append("lobby", f'{{"event":"e","data":{{"n":{n}}}}}'.encode()) for n in range(5)]
    assert [json.loads(f)["seq"] for f in frames] == [1, 2, 3, 4, 5]
    assert buffer.position("lobby") == 5
    assert buffer.position("other") == 0
    assert buffer.since("lobby", 2).frames == frames[2:]
    assert buffer.since("lobby", 5).frames == []
    assert buffer.since("lobby", 0).frames == frames
    assert buffer.since("lobby", 9).resync  # a position this buffer never gave out
    assert buffer.since("other", 0).frames == []


def test_bounds_by_size_and_age_turn_old_gaps_into_resync() -> None:
    clock = Clock()
    buffer = ReplayBuffer(10, size=3, clock=clock)
    for _ in range(5):
        buffer.append("s", b'{"event":"e","data":{}}')
    assert buffer.since("s", 1).resync  # frames 2 was dropped: only 3, 4, 5 are kept
    assert len(buffer.since("s", 2).frames) == 3
    clock.now = 11
    assert buffer.since("s", 4).resync  # too old now
    buffer.append("s", b'{"event":"e","data":{}}')
    assert len(buffer.since("s", 5).frames) == 1


@pytest.mark.parametrize(("seconds", "size"), [(0, 10), (5, 0)])
def test_bad_bounds(seconds: float, size: int) -> None:
    with pytest.raises(ValueError, match="recover should be"):
        ReplayBuffer(seconds, size)


def chat(size: int = 1000) -> WebSocket:
    ws = WebSocket("/chat/<room>", recover=60, recover_size=size)

    @ws.on
    async def open(socket: WebSocketHandler) -> None:
        socket.join(socket.path_params["room"])

    @ws.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        ws.to(socket.path_params["room"]).emit("said", data)

    return ws


class Tracker:
    """What the JavaScript client does: remember the epoch and the last seq of each stream."""

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.streams: dict[str, int] = {}
        self.tokens: dict[str, str] = {}
        self.said: list[int] = []
        self.resyncs: list[str] = []

    def see(self, frame: Any) -> None:
        if frame.event == "stream" and frame.data.get("left"):
            self.streams.pop(frame.data["stream"], None)
            self.tokens.pop(frame.data["stream"], None)
        elif frame.event == "stream":
            self.epoch = frame.data["epoch"]
            self.streams[frame.data["stream"]] = frame.data["seq"]
            self.tokens[frame.data["stream"]] = frame.data["token"]
        elif frame.event == "resync":
            self.resyncs.append(frame.data["stream"])
        if frame.stream is not None:
            assert frame.seq == self.streams.get(frame.stream, 0) + 1  # no gap, no duplicate
            self.streams[frame.stream] = frame.seq

    async def read(self, client: WebSocketTestClient, count: int) -> None:
        while len(self.said) < count:
            frame = await client.receive()
            self.see(frame)
            if frame.event == "said":
                self.said.append(frame.data["n"])

    def query(self) -> str:
        request = {"epoch": self.epoch, "streams": self.streams, "tokens": self.tokens}
        return "?recover=" + urllib.parse.quote(json.dumps(request))


async def test_a_client_that_drops_gets_exactly_what_it_missed_then_the_live_stream() -> None:
    ws = chat()
    tracker = Tracker()
    async with serve() as server:
        talker = await server.connect("/chat/lobby")
        listener = await server.connect("/chat/lobby")
        for n in range(3):
            await talker.emit("say", {"n": n})
        await tracker.read(listener, 3)
        assert tracker.streams["lobby"] == 3
        listener.close()
        await listener.wait_closed()
        for n in range(3, 13):  # ten frames while it is away
            await talker.emit("say", {"n": n})
        await talker.wait_for("said")
        back = await server.connect("/chat/lobby" + tracker.query())
        await tracker.read(back, 13)
        await talker.emit("say", {"n": 13})
        await tracker.read(back, 14)
        assert tracker.said == list(range(14))  # in order, no duplicate, no gap
        assert tracker.resyncs == []
        assert ws.replay is not None
        assert ws.replay.position("lobby") == 14
        back.close()
        talker.close()


async def test_a_client_that_received_nothing_can_recover_from_its_position() -> None:
    chat()
    tracker = Tracker()
    async with serve() as server:
        quiet = await server.connect("/chat/lobby")
        while "lobby" not in tracker.streams:
            tracker.see(await quiet.receive())
        assert tracker.streams["lobby"] == 0
        quiet.close()
        talker = await server.connect("/chat/lobby")
        for n in range(2):
            await talker.emit("say", {"n": n})
        await talker.wait_for("said")
        back = await server.connect("/chat/lobby" + tracker.query())
        await tracker.read(back, 2)
        assert tracker.said == [0, 1]
        back.close()
        talker.close()


async def test_a_gap_older_than_the_buffer_earns_a_resync() -> None:
    chat(size=5)
    async with serve() as server:
        talker = await server.connect("/chat/lobby")
        for n in range(8):
            await talker.emit("say", {"n": n})
        query = "?recover=" + urllib.parse.quote(json.dumps({"epoch": "x", "streams": {"lobby": 1}}))
        other_epoch = await server.connect("/chat/lobby" + query)
        assert await other_epoch.wait_for("resync") == {"stream": "lobby"}
        ws_epoch = (await talker.wait_for("stream"))["epoch"]
        query = "?recover=" + urllib.parse.quote(json.dumps({"epoch": ws_epoch, "streams": {"lobby": 1}}))
        too_old = await server.connect("/chat/lobby" + query)
        assert await too_old.wait_for("resync") == {"stream": "lobby"}
        assert "said" not in [frame.event for frame in too_old._buffer]  # nothing half-replayed
        for client in (talker, other_epoch, too_old):
            client.close()


async def test_an_unreadable_recover_parameter_is_a_warning() -> None:
    chat()
    async with serve() as server, server.connect("/chat/lobby?recover=nonsense") as client:
        assert await client.wait_for("warning") == {"message": "The recover parameter could not be read."}


async def test_frames_from_other_processes_are_numbered_where_they_are_delivered() -> None:
    """With several processes, each numbers what it delivers: its clients see one gap-free sequence."""
    ws = chat()
    async with serve() as server:
        client = await server.connect("/chat/lobby")
        await client.wait_for("stream")
        await client.request("say", {"n": 0})  # its reply comes after the room's frame
        remote = Envelope(
            ws.path, protocol.encode_emit("said", {"n": 1}), room="lobby", origin="another-process"
        )
        TornadoWrapper.deliver_envelope(remote)  # as the Redis broker does for another process's emit
        await client.emit("say", {"n": 2})
        frames = []
        while len(frames) < 3:
            frame = await client.receive()
            if frame.event == "said":
                frames.append(frame)
        assert [(f.data["n"], f.stream, f.seq) for f in frames] == [
            (0, "lobby", 1),
            (1, "lobby", 2),
            (2, "lobby", 3),
        ]
        client.close()
