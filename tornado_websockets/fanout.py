"""Fan-out: an emit's frame written to every client of a path (or of a room) in this process.

`FanOut` is a `~tornado_websockets.websocket.WebSocket`'s delivery: `FanOut.send` takes an emit
from this process (deliver here, then publish to the others), `FanOut.deliver` an envelope from
anywhere. The frame is encoded once, before; each member gets the same bytes through its
connection's `~tornado_websockets.outbox.Outbox`.

With recovery on, every frame of a stream has a number, given by one `Numbering`: the path's own
`~tornado_websockets.recovery.ReplayBuffer` (`LocalNumbering`, the in-process broker), or the
backplane, which numbers a frame before any process delivers it (`SharedNumbering`). A frame this
process sent to be numbered takes, for its local members, its place in their order (see
`~tornado_websockets.outbox.Outbox.expect_numbered`).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from tornado_websockets import delivery, loops
from tornado_websockets.broker import Envelope
from tornado_websockets.recovery import BROADCAST_STREAM, ReplayBuffer

if TYPE_CHECKING:
    from tornado_websockets.websocket import WebSocket
    from tornado_websockets.websockethandler import WebSocketHandler

__all__ = ["FanOut", "LocalNumbering", "Numbering", "SharedNumbering"]


class Numbering(Protocol):
    """Where the frames of a recovering path get their numbers."""

    def number(self, envelope: Envelope) -> tuple[bytes, int | None]:
        """The frame to write for ``envelope`` and its number in its stream (None: it has none)."""
        ...


class SharedNumbering:
    """Numbered by the backplane before delivery (or not at all: no recovery, or the backplane
    was down): the envelope carries its number already."""

    __slots__ = ()

    def number(self, envelope: Envelope) -> tuple[bytes, int | None]:
        """The envelope's frame and the number the backplane gave it."""
        return envelope.frame, envelope.seq


class LocalNumbering:
    """Numbered here, by the path's replay buffer, which keeps the frame for clients coming back."""

    __slots__ = ("appended", "replay")

    def __init__(self, replay: ReplayBuffer, appended: Callable[[], None]) -> None:
        self.replay = replay
        self.appended = appended  # called after each append (the buffer's expiry timer)

    def number(self, envelope: Envelope) -> tuple[bytes, int | None]:
        """Keep the frame and give it the stream's next number."""
        if envelope.seq is not None:
            return envelope.frame, envelope.seq
        frame = self.replay.append(envelope.stream, envelope.frame)
        self.appended()
        return frame, self.replay.position(envelope.stream)


#: No recovery: nothing numbers the frames.
UNNUMBERED = SharedNumbering()


class FanOut:
    """The delivery of one `~tornado_websockets.websocket.WebSocket` (see the module); on the loop."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._delivering = False  # a fan-out is under way (see deliver)
        self._deferred: collections.deque[Envelope] = collections.deque()
        #: Connections that left a room while a frame sent to it as members was being numbered by
        #: the backplane (emit to the room, then leave): it still comes to them, in its place.
        self._left_awaiting: dict[str, list[WebSocketHandler]] = {}
        self._expiry: asyncio.TimerHandle | None = None  # the replay buffer's next expiry
        self._local: LocalNumbering | None = None

    def numbering(self) -> Numbering:
        """Where the path's frames get their numbers, with the broker it has now."""
        replay = self.websocket.replay
        if replay is None or self.websocket.server.broker.shares_replay:
            return UNNUMBERED
        if self._local is None or self._local.replay is not replay:
            self._local = LocalNumbering(replay, self._schedule_expiry)
        return self._local

    def send(self, envelope: Envelope) -> None:
        """Deliver an envelope to this process's clients, then publish it to the others (on the loop).

        With recovery shared through the backplane, the backplane numbers it first and every
        process, this one included, delivers it when it comes back numbered.
        """
        websocket = self.websocket
        broker = websocket.server.broker
        if websocket.replay is not None and broker.shares_replay and broker.replay_ready:
            # What the sending function writes next to these clients waits for this frame.
            members = websocket.handlers if envelope.room is None else websocket.rooms.members(envelope.room)
            for handler in members:
                handler.outbox.expect_numbered(envelope.stream)
            broker.publish(dataclasses.replace(envelope, numbered=True))
            return
        self.deliver(envelope)
        broker.publish(envelope)

    def deliver(self, envelope: Envelope) -> None:
        """Write the envelope's frame to this process's clients of its room (or of the path).

        An emit made while a fan-out is under way (a slow client closed in the middle of it
        announces its ``left``) waits for the fan-out to end: every member gets the frames of a
        stream in the order of their numbers.
        """
        if self._delivering:
            self._deferred.append(envelope)
            return
        self._delivering = True
        try:
            self._deliver_now(envelope)
            while self._deferred:
                self._deliver_now(self._deferred.popleft())
        finally:
            self._delivering = False
            self._deferred.clear()

    def _deliver_now(self, envelope: Envelope) -> None:
        websocket = self.websocket
        broker = websocket.server.broker
        targets = websocket.handlers if envelope.room is None else websocket.rooms.members(envelope.room)
        # Nobody can have it: no member here, none elsewhere (the in-process broker), and no
        # buffer to replay it from to a member coming back.
        nobody = not targets and websocket.replay is None and not broker.cross_process
        if envelope.room is not None and envelope.seq is None and nobody:
            delivery.record_drop(delivery.UNKNOWN_ROOM, websocket.path)
        frame, seq = self.numbering().number(envelope)
        # One this process sent to be numbered, back (or, Redis refusing, back unnumbered): its
        # local members wrote nothing since but into their order, which it now takes its place in.
        own = envelope.origin == broker.id and (envelope.seq is not None or envelope.numbered)
        here = loops.running_loop()
        elsewhere: list[WebSocketHandler] = []
        if seq is None and not own:  # the common case, kept lean: this runs once per member
            skip = envelope.skip
            for handler in tuple(targets):
                if skip is not None and handler.id == skip:
                    continue
                if handler.loop is here:
                    handler.outbox.write(frame)
                else:
                    elsewhere.append(handler)
        else:
            left = self._left_awaiting.pop(envelope.stream, None) if own and self._left_awaiting else None
            if left:
                members = set(targets)
                awaiting = (h for h in left if h not in members and h.outbox.awaits_numbered(envelope.stream))
                targets = [*targets, *awaiting]
            for handler in tuple(targets):
                if handler.loop is here:
                    _write_member(handler, envelope, frame, seq, own)
                else:
                    elsewhere.append(handler)
            for handler in left or ():  # those still waiting for a later frame of the stream
                if handler.outbox.awaits_numbered(envelope.stream):
                    self.await_after_leave(envelope.stream, handler)
        if elsewhere:
            self._write_elsewhere(elsewhere, envelope, frame, seq, own)

    def await_after_leave(self, room: str, handler: WebSocketHandler) -> None:
        """``handler`` left ``room`` with frames sent to it still being numbered: they come to it."""
        waiting = [h for h in self._left_awaiting.get(room, ()) if h.outbox.awaits_numbered(room)]
        if handler not in waiting:
            waiting.append(handler)
        self._left_awaiting[room] = waiting

    def _write_elsewhere(
        self, handlers: list[WebSocketHandler], envelope: Envelope, frame: bytes, seq: int | None, own: bool
    ) -> None:
        """Hand a frame to connections served by other loops than this one (rare: several loops)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[WebSocketHandler]] = {}
        for handler in handlers:
            by_loop.setdefault(handler.loop, []).append(handler)
        for loop, group in by_loop.items():
            try:
                loops.call_soon(loop, _write_all, group, envelope, frame, seq, own)
            except loops.LoopUnavailableError:  # that loop has gone, and its connections with it
                delivery.record_drop(delivery.CONNECTION_CLOSED, self.websocket.path, len(group))
                for handler in group:
                    self.websocket.connection_lost(handler)

    def _schedule_expiry(self) -> None:
        """Expire the replay buffer's old frames on a timer while it keeps any, touched or not."""
        replay = self.websocket.replay
        if self._expiry is not None or replay is None:
            return
        rooms = self.websocket.rooms

        def expire() -> None:
            self._expiry = None
            replay.expire(lambda stream: stream == BROADCAST_STREAM or stream in rooms)
            if len(replay):
                self._schedule_expiry()

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # delivered outside a loop (a test's broadcast): expired at the next one
            return
        self._expiry = loop.call_later(max(replay.seconds / 4, 0.05), expire)


def _write_all(
    handlers: list[WebSocketHandler], envelope: Envelope, frame: bytes, seq: int | None, own: bool
) -> None:
    for handler in handlers:
        _write_member(handler, envelope, frame, seq, own)


def _write_member(
    handler: WebSocketHandler, envelope: Envelope, frame: bytes, seq: int | None, own: bool
) -> None:
    """One member's copy of a frame: in its place in the member's order if this process sent it."""
    write = functools.partial(_write_one, handler, envelope, frame, seq)
    if not (own and handler.outbox.fill_numbered(envelope.stream, write)):
        write()


def _write_one(handler: WebSocketHandler, envelope: Envelope, frame: bytes, seq: int | None) -> None:
    if seq is None:
        if handler.id != envelope.skip:
            handler.outbox.write(frame)
    elif handler.id == envelope.skip:  # its numbers must go on without a gap all the same
        handler.catchup.write_position(envelope.stream, seq)
    elif envelope.seq is not None:  # numbered by the broker: held while the stream's catch-up runs
        handler.catchup.write_numbered(envelope.stream, seq, frame)
    else:
        handler.outbox.write(frame)
