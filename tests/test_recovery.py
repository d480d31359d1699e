"""Missed-message recovery: the replay buffer as pure data, then a client dropping and coming back."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from types import SimpleNamespace
from typing import Any

import pytest

from tests.polling import wait_until
from tests.rawclient import RawClient
from tornado_websockets import protocol
from tornado_websockets.broker import Envelope
from tornado_websockets.limits import Limits
from tornado_websockets.recovery import (
    UNUSABLE,
    ReplayBuffer,
    position_token,
    read_positions,
    token_allows,
    token_grant,
    with_sequence,
)
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
        assert "said" not in [frame.event for frame in too_old.buffered()]  # nothing half-replayed
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


# Signed positions, used once ----------------------------------------------------------------------


def test_a_token_vouches_for_its_stream_epoch_and_later_positions_only() -> None:
    secret = b"s" * 32
    token = position_token(secret, "/chat", "lobby", "ep", 10, grant="g1")
    assert token_allows(secret, "/chat", "lobby", "ep", token, 10)
    assert token_allows(secret, "/chat", "lobby", "ep", token, 25)  # it read on after it was handed
    assert not token_allows(secret, "/chat", "lobby", "ep", token, 7)  # from before it was there
    assert not token_allows(secret, "/chat", "other", "ep", token, 10)
    assert not token_allows(secret, "/news", "lobby", "ep", token, 10)
    assert not token_allows(secret, "/chat", "lobby", "ep2", token, 10)
    assert not token_allows(b"x" * 32, "/chat", "lobby", "ep", token, 10)
    forged = "3." + token.partition(".")[2]  # its signature on an earlier position
    assert not token_allows(secret, "/chat", "lobby", "ep", forged, 3)
    other_grant = token.replace(".g1.", ".g2.")  # its signature for another grant
    assert not token_allows(secret, "/chat", "lobby", "ep", other_grant, 10)
    assert token_grant(token) == "g1"
    bad_tokens = (None, 5, "", "abc", "5", "-1.x", "9" * 30 + ".x", "².x", "١٠.x", "5.x", "5..x", "5.g.")  # noqa: RUF001
    for bad in bad_tokens:
        assert not token_allows(secret, "/chat", "lobby", "ep", bad, 10)


def test_what_is_no_position_earns_a_resync_instead_of_dropping_out() -> None:
    request = {"a": 3, "b": 0, "c": 3.0, "d": True, "e": -2, "f": 2**63, "g": "4", "h": None, 5: 1}
    assert read_positions(request) == {  # type: ignore[arg-type]
        "a": 3,
        "b": 0,
        **dict.fromkeys("cdefgh", UNUSABLE),
        "5": 1,
    }


#: A request no server could have answered: a position of 2**70 (a float once decoded) and a token
#: whose digits are not ASCII ("²".isdigit() is True, int("²") raises).
ODD_REQUEST = {"streams": {"*": 2**70, "lobby": 3}, "tokens": {"*": "1.x", "lobby": "².x"}}


async def resyncs_and_positions(client: WebSocketTestClient) -> tuple[list[str], dict[str, int]]:
    """The streams resynced and the positions handed, until both streams have a position."""
    resynced: list[str] = []
    found: dict[str, int] = {}
    while len(found) < 2:
        frame = await client.receive()
        if frame.event == "resync":
            assert frame.data["stream"] not in found  # the resync comes before the position
            resynced.append(frame.data["stream"])
        elif frame.event == "stream":
            found[frame.data["stream"]] = frame.data["seq"]
    return sorted(resynced), found


async def test_any_recover_request_ends_in_a_resync_and_a_position_per_stream() -> None:
    """Issue 28 §6: "².x" crashed the catch-up, 2**70 silently dropped out of the request."""
    chat()
    async with serve() as server:
        talker = await server.connect("/chat/lobby")
        epoch = (await talker.wait_for("stream"))["epoch"]
        query = "?recover=" + urllib.parse.quote(json.dumps({"epoch": epoch, **ODD_REQUEST}))
        async with server.connect("/chat/lobby" + query) as odd:
            assert await resyncs_and_positions(odd) == (["*", "lobby"], {"*": 0, "lobby": 0})
            await talker.emit("say", {"n": 1})
            assert (await odd.wait_for("said")) == {"n": 1}
        talker.close()


def rooms_app(**options: Any) -> WebSocket:
    """A recovering path whose clients join and leave rooms by asking, and say things to them."""
    ws = WebSocket("/rooms", recover=60, **options)

    @ws.on
    async def join(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.join(data["room"])

    @ws.on
    async def leave(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.leave(data["room"])

    @ws.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        ws.emit("said", data, room=data["room"])

    return ws


async def test_a_fresh_connection_cannot_recover_from_a_position_it_was_never_given() -> None:
    chat()
    tracker = Tracker()
    async with serve() as server:
        talker = await server.connect("/chat/lobby")
        for n in range(5):
            await talker.emit("say", {"n": n})
        await tracker.read(talker, 5)
        # A client that came after the five frames: its token vouches for position 5 onwards.
        late = Tracker()
        async with server.connect("/chat/lobby") as newcomer:
            while "lobby" not in late.streams:
                late.see(await newcomer.receive())
        epoch, token = late.epoch, late.tokens["lobby"]
        assert late.streams["lobby"] == 5
        # Three frames back with the right epoch: no token, a token of another stream, its own
        # token (handed at 5) or its signature on another position: each earns a resync.
        attempts = [
            {"epoch": epoch, "streams": {"lobby": 2}},
            {"epoch": epoch, "streams": {"lobby": 2}, "tokens": {"lobby": late.tokens["*"]}},
            {"epoch": epoch, "streams": {"lobby": 2}, "tokens": {"lobby": token}},
            {"epoch": epoch, "streams": {"lobby": 2}, "tokens": {"lobby": "2." + token.partition(".")[2]}},
        ]
        for request in attempts:
            query = "?recover=" + urllib.parse.quote(json.dumps(request))
            async with server.connect("/chat/lobby" + query) as intruder:
                assert await intruder.wait_for("resync") == {"stream": "lobby"}
                position = await intruder.wait_for("stream")
                while position["stream"] != "lobby":
                    position = await intruder.wait_for("stream")
                assert position["seq"] == 5
                assert "said" not in [frame.event for frame in intruder._buffer]
        talker.close()


async def test_joining_a_room_again_replays_nothing_from_the_first_position() -> None:
    rooms_app()
    tracker = Tracker()
    async with serve() as server:
        talker = await server.connect("/rooms")
        await talker.request("join", {"room": "lobby"})
        client = await server.connect("/rooms")
        await client.request("join", {"room": "lobby"})
        while "lobby" not in tracker.streams:
            tracker.see(await client.receive())
        await talker.emit("say", {"room": "lobby", "n": 0})
        await tracker.read(client, 1)
        client.close()
        await talker.emit("say", {"room": "lobby", "n": 1})  # missed while away: recovered once
        await talker.wait_for("said")
        await talker.wait_for("said")

        back = await server.connect("/rooms" + tracker.query())
        await back.request("join", {"room": "lobby"})
        await tracker.read(back, 2)
        assert tracker.said == [0, 1]
        await back.request("leave", {"room": "lobby"})
        left = await back.wait_for("stream")
        while left != {"stream": "lobby", "left": True}:
            left = await back.wait_for("stream")
        tracker.see(SimpleNamespace(event="stream", data=left, stream=None))
        await talker.emit("say", {"room": "lobby", "n": 2})  # sent while it is not a member
        await talker.wait_for("said")
        await back.request("join", {"room": "lobby"})
        position = await back.wait_for("stream")
        assert position["stream"] == "lobby"
        assert position["seq"] == 3
        await talker.emit("say", {"room": "lobby", "n": 3})
        assert (await back.wait_for("said"))["n"] == 3  # not 0, 1 or 2 again
        back.close()
        talker.close()


async def lobby_until_position(client: WebSocketTestClient) -> list[tuple[str, Any]]:
    """The frames of the lobby up to its position, that included: ``(event, n or seq)``."""
    frames: list[tuple[str, Any]] = []
    while not frames or frames[-1][0] != "stream":
        frame = await client.receive()
        if frame.event == "said":
            frames.append(("said", frame.data["n"]))
        elif frame.event in ("resync", "stream") and frame.data["stream"] == "lobby":
            frames.append((frame.event, frame.data.get("seq")))
    return frames


async def test_a_token_recovers_once_and_each_reconnection_gets_a_fresh_one() -> None:
    """Issue 28 §6: the same token recovered the same frames on any number of new connections."""
    chat()
    tracker = Tracker()
    async with serve() as server:
        talker = await server.connect("/chat/lobby")
        client = await server.connect("/chat/lobby")
        while "lobby" not in tracker.streams:
            tracker.see(await client.receive())
        # What a client does: drop, come back with its newest token, recover; again and again.
        for round_ in range(3):
            client.close()
            await client.wait_closed()
            for n in (2 * round_, 2 * round_ + 1):
                await talker.emit("say", {"n": n})
                await talker.wait_for("said")
            query = tracker.query()
            client = await server.connect("/chat/lobby" + query)
            await tracker.read(client, 2 * round_ + 2)
            # The same token again, on another connection (a copied URL, a second tab): resync.
            async with server.connect("/chat/lobby" + query) as copy:
                assert await lobby_until_position(copy) == [("resync", None), ("stream", 2 * round_ + 2)]
            while tracker.tokens["lobby"].startswith(f"{2 * round_}."):  # up to its new position
                tracker.see(await client.receive())
        assert tracker.said == list(range(6))
        assert tracker.resyncs == []
        client.close()
        talker.close()


async def test_a_token_kept_after_leaving_the_room_recovers_nothing() -> None:
    """Issue 28 §6: a token kept after ``left`` recovered the frames sent while its client was out."""
    rooms_app()
    async with serve() as server:
        talker = await server.connect("/rooms")
        await talker.request("join", {"room": "lobby"})
        client = await server.connect("/rooms")
        await client.request("join", {"room": "lobby"})
        position = await client.wait_for("stream")
        while position["stream"] != "lobby":
            position = await client.wait_for("stream")
        epoch, seq, kept = position["epoch"], position["seq"], position["token"]
        await client.request("leave", {"room": "lobby"})
        client.close()
        await client.wait_closed()
        for n in range(2):  # sent while it was out of the room
            await talker.emit("say", {"room": "lobby", "n": n})
            await talker.wait_for("said")
        request = {"epoch": epoch, "streams": {"lobby": seq}, "tokens": {"lobby": kept}}
        query = "?recover=" + urllib.parse.quote(json.dumps(request))
        async with server.connect("/rooms" + query) as back:
            await back.request("join", {"room": "lobby"})
            assert await lobby_until_position(back) == [("resync", None), ("stream", seq + 2)]
        talker.close()


async def test_a_slow_member_closed_mid_fan_out_never_sends_numbers_backwards() -> None:
    ws = rooms_app(presence_events=True, limits=Limits(max_backlog=64 * 1024))
    payload = "y" * 8_000
    async with serve() as server:
        first = await server.connect("/rooms")
        await first.request("join", {"room": "lobby"})
        slow = await RawClient.connect(server.port, "/rooms", receive_buffer=4096)
        slow.send_text(b'{"event": "join", "data": {"room": "lobby"}}')
        await wait_until(lambda: len(ws.rooms.members("lobby")) == 2)
        others = [await server.connect("/rooms") for _ in range(3)]
        for other in others:
            await other.request("join", {"room": "lobby"})
        slow_handler = ws.rooms.members("lobby")[1]
        trackers = [Tracker() for _ in others]
        sent = 0
        while not slow_handler.is_closed and sent < 2_000:
            ws.emit("said", {"n": sent, "blob": payload}, room="lobby")
            sent += 1
            if sent % 20 == 0:
                await asyncio.sleep(0)
        assert slow_handler.is_closed
        for other, tracker in zip(others, trackers, strict=True):
            # Tracker.see fails on a number that does not follow the last one.
            while tracker.said[-1:] != [sent - 1]:
                frame = await other.receive()
                tracker.see(frame)
                if frame.event == "said":
                    tracker.said.append(frame.data["n"])
            left = await other.wait_for("left")
            assert left["room"] == "lobby"
        slow.close()
        for client in (first, *others):
            client.close()


def test_the_buffer_forgets_idle_streams_by_time_and_bounds_its_total() -> None:
    clock = Clock()
    buffer = ReplayBuffer(1, size=10, clock=clock, total=25)
    for room in range(50_000):
        buffer.append(f"room{room}", b'{"event":"e","data":{}}')
    assert len(buffer) == 25  # the least recently appended streams gave theirs up
    clock.now = 2
    buffer.expire(lambda stream: stream == "room49999")
    assert len(buffer) == 0
    assert buffer.position("room49999") == 1  # kept: someone is in it
    # A forgotten stream starts again above every number given: no old position means a new frame.
    assert buffer.append("room3", b'{"event":"e","data":{}}').endswith(b'"seq":2}')
    assert buffer.since("room3", 1).frames
    assert buffer.since("room3", 0).resync


async def test_frames_of_idle_rooms_expire_on_their_own() -> None:
    ws = WebSocket("/many", recover=0.2)
    async with serve():
        for room in range(5_000):
            ws.emit("news", {"n": room}, room=f"room{room}")
        assert ws.replay is not None
        assert len(ws.replay) == 5_000
        await wait_until(lambda: len(ws.replay or ()) == 0, timeout=10)


def test_missed_since_gives_every_frame_after_a_position_or_none() -> None:
    from tornado_websockets.recovery import missed_since

    kept = [(3, b"c"), (4, b"d"), (5, b"e")]
    assert missed_since(5, kept, 3) == [b"d", b"e"]
    assert missed_since(5, kept, 5) == []
    assert missed_since(5, kept, 1) is None  # frame 2 is no longer kept: resync
    assert missed_since(5, kept, 9) is None  # a position never given out
