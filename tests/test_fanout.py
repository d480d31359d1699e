"""FanOut alone, without sockets: who gets a frame, numbered how, in which order.

The members are stand-ins holding a real `Outbox` whose writes are collected; the end-to-end
behaviour (real clients, real brokers) is in tests/test_websocket.py, test_order.py and
test_recovery*.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from types import SimpleNamespace
from typing import Any

from tests.outboxes import recording_outbox
from tornado_websockets import delivery, protocol
from tornado_websockets.broker import Envelope
from tornado_websockets.fanout import FanOut, LocalNumbering, SharedNumbering
from tornado_websockets.recovery import ReplayBuffer
from tornado_websockets.websocket import WebSocket


class Member:
    """A connection stand-in (hashable, as a connection is, by identity)."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)


def member(websocket: WebSocket, room: str | None = None, on_send: Any = None) -> Any:
    """A connection stand-in on the running loop; ``.written`` lists the frames it was sent."""
    loop = asyncio.get_running_loop()
    written: list[bytes] = []

    def record(frame: bytes) -> None:
        written.append(frame)
        if on_send is not None:
            on_send(frame)

    outbox = recording_outbox(websocket.path, record)
    socket = Member(id=uuid.uuid4().hex, loop=loop, outbox=outbox, written=written)
    websocket.handlers.append(socket)
    if room is not None:
        websocket.rooms.join(room, socket)
    return socket


def test_local_numbering_numbers_each_stream_and_keeps_the_frames() -> None:
    replay = ReplayBuffer(60, 10)
    appended: list[None] = []
    numbering = LocalNumbering(replay, lambda: appended.append(None))
    frame = protocol.encode("news", {})
    assert [numbering.number(Envelope("/p", frame))[1] for _ in range(2)] == [1, 2]
    assert numbering.number(Envelope("/p", frame, room="lobby"))[1] == 1
    assert len(appended) == 3
    assert json.loads(replay.since("*", 1).frames[0])["data"] == {}


def test_shared_numbering_keeps_the_backplanes_number() -> None:
    frame = protocol.encode("news", {})
    assert SharedNumbering().number(Envelope("/p", frame, seq=7)) == (frame, 7)
    assert SharedNumbering().number(Envelope("/p", frame)) == (frame, None)


async def test_every_member_but_the_skipped_one_gets_the_same_bytes() -> None:
    ws = WebSocket("/f", add_to_handlers=False)
    a, b, c = member(ws, "lobby"), member(ws, "lobby"), member(ws)
    frame = protocol.encode("news", {})
    FanOut(ws).deliver(Envelope("/f", frame, room="lobby", skip=b.id))
    assert (a.written, b.written, c.written) == ([frame], [], [])
    FanOut(ws).deliver(Envelope("/f", frame))
    assert (len(a.written), len(b.written), len(c.written)) == (2, 1, 1)


async def test_an_emit_made_during_a_fan_out_follows_it() -> None:
    ws = WebSocket("/f", add_to_handlers=False)
    fanout = FanOut(ws)
    first, second = protocol.encode("first", {}), protocol.encode("second", {})

    def emit_again(frame: bytes) -> None:  # writing to ``a`` emits again (a slow client's ``left``)
        if frame == first:
            fanout.deliver(Envelope("/f", second))

    member(ws, on_send=emit_again)
    b = member(ws)
    fanout.deliver(Envelope("/f", first))
    assert b.written == [first, second]  # not [second, first]


async def test_a_room_nobody_can_hear_is_a_counted_drop() -> None:
    ws = WebSocket("/f", add_to_handlers=False)
    FanOut(ws).deliver(Envelope("/f", protocol.encode("news", {}), room="empty"))
    assert delivery.dropped() == {(delivery.UNKNOWN_ROOM, "/f"): 1}


async def test_a_frame_this_process_sent_to_be_numbered_takes_its_place_in_the_order() -> None:
    ws = WebSocket("/f", add_to_handlers=False, recover=60)
    a = member(ws)
    a.outbox.expect_numbered("*")
    reply = protocol.encode("reply", {})
    a.outbox.write(reply)  # made after the emit: waits for it
    numbered = protocol.encode("news", {})
    a.catchup = SimpleNamespace(write_numbered=lambda stream, seq, frame: a.outbox.write(frame))
    FanOut(ws).deliver(Envelope("/f", numbered, origin=ws.server.broker.id, seq=1))
    assert a.written == [numbered, reply]
