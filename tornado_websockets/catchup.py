"""CatchUp: a returning client's positions, what it missed of each stream, and the frames held meanwhile.

With recovery on (``WebSocket(recover=...)``), a client coming back sends its last positions
(``?recover=...``). When the connection opens (the path's own stream) and whenever it joins a
room, it first gets what it missed of that stream (or ``resync`` when those frames are no longer
kept), then its position. A token recovers once (its grant is spent, on every process when
recovery is shared), and leaving a room revokes the tokens the connection was handed there. With
the in-process broker the path's `~tornado_websockets.recovery.ReplayBuffer`
answers at once; with recovery shared by the backplane, the broker is read asynchronously and
the frames of the stream that reach the connection meanwhile are held, then written in order.

Everything runs on the connection's loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from tornado_websockets import codec, protocol, recovery
from tornado_websockets.recovery import BROADCAST_STREAM, Replay

if TYPE_CHECKING:
    from tornado_websockets.broker import ReplayStore
    from tornado_websockets.websockethandler import WebSocketHandler

__all__ = ["CatchUp"]

logger = logging.getLogger(__name__)


class CatchUp:
    """One connection's recovery state (see the module)."""

    def __init__(self, connection: WebSocketHandler) -> None:
        self.connection = connection
        self.websocket = connection.websocket
        self._write = connection.outbox.write
        #: The client's last position in each stream, and what it sent with it (its token).
        self.positions: dict[str, int] = {}
        self.tokens: dict[str, object] = {}
        self.epoch: str | None = None
        #: Frames numbered by the backplane held, per stream, until its catch-up is written.
        self.held: dict[str, list[tuple[int, bytes | None]]] = {}  # None: its position only
        self._signing: tuple[str, bytes] | None = None  # the epoch and secret of the last position
        #: The grant of the tokens handed to this connection in each stream (see `left`).
        self._grants: dict[str, str] = {}
        # The catch-up tasks running, made on first use (a set is 216 bytes; most connections have none).
        self._tasks: set[asyncio.Future[None]] | None = None
        #: Streams whose shared catch-up waits for the backplane to connect (see `backplane_ready`).
        self.waiting: dict[str, None] = {}

    def read_request(self, raw: str) -> bool:
        """Read ``?recover={"epoch": e, "streams": {name: seq}, "tokens": {name: token}}``; False:
        it could not be read (a position without its token earns a ``resync``)."""
        try:
            request = codec.loads(raw)
            self.positions = recovery.read_positions(request["streams"])
            self.tokens = dict(request.get("tokens") or {})
            self.epoch = str(request["epoch"])
        except (ValueError, TypeError, KeyError, AttributeError):
            return False
        return True

    def catch_up(self, stream: str) -> None:
        """Replay what the client missed of ``stream``, then tell its position (recovery on)."""
        replay = self.websocket.replay
        if replay is None:
            return
        broker = self.websocket.server.broker
        if broker.shares_replay:
            # Frames of the stream that reach this process from now on wait for the catch-up.
            self.held[stream] = []
            # Redis connecting or unreachable: no position can be signed yet; the catch-up runs
            # once it is connected, else the client could never recover.
            if not broker.replay_ready and broker.call_when_replay_ready(self.connection):
                self.waiting[stream] = None
            else:
                self._start(stream, replay.seconds)
            return
        # A position serves once: joining the room again later replays nothing from it.
        seen, token = self.positions.pop(stream, None), self.tokens.pop(stream, None)
        missed = None
        if seen is not None:
            vouched = self._vouched(stream, seen, token, replay.epoch, replay.secret)
            # A token recovers once: the second connection to show it resyncs.
            spent = vouched and replay.spend(recovery.token_grant(token) or "")
            missed = replay.since(stream, seen) if spent else Replay(resync=True)
        self._write_catch_up(stream, missed, replay.position(stream), replay.epoch, replay.secret)

    def _start(self, stream: str, seconds: float) -> None:
        self._spawn(self._catch_up_shared(stream, seconds))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = set()
        tasks.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(tasks.discard)

    def left(self, stream: str) -> None:
        """The connection left ``stream``: the tokens it was handed there recover nothing any more,
        so a client that kept one does not get what was sent while it was out."""
        grant = self._grants.pop(stream, None)
        replay = self.websocket.replay
        if grant is None or replay is None:
            return
        store = self.websocket.server.broker.replay
        if store is None:
            replay.revoke(grant)
        else:
            self._spawn(self._revoke_shared(store, grant, replay.seconds))

    async def _revoke_shared(self, store: ReplayStore, grant: str, seconds: float) -> None:
        try:
            await store.revoke(self.websocket.path, grant, seconds)
        except ConnectionError as error:
            logger.warning("The tokens %r was handed could not be revoked: %s", self.connection, error)

    async def _spend_shared(self, token: object, seconds: float) -> bool:
        """Spend the grant of a vouched ``token`` for every process: False when it was spent or
        revoked already, or Redis cannot tell (the client resyncs rather than recover twice)."""
        store, grant = self.websocket.server.broker.replay, recovery.token_grant(token)
        if store is None or grant is None:
            return False
        try:
            return await store.spend(self.websocket.path, grant, seconds)
        except ConnectionError as error:
            logger.warning("Recovery token of %r not checked, resync: %s", self.connection, error)
            return False

    def backplane_ready(self) -> None:
        """The backplane connected: run the catch-ups that waited for it."""
        waiting, self.waiting = self.waiting, {}
        replay = self.websocket.replay
        for stream in waiting:
            member = stream == BROADCAST_STREAM or stream in self.websocket.rooms.rooms_of(self.connection)
            if self.connection.is_closed or replay is None or not member:  # gone, or left the room
                self.held.pop(stream, None)
            else:
                self._start(stream, replay.seconds)

    def _vouched(self, stream: str, seen: int, token: object, epoch: str, secret: bytes) -> bool:
        """Whether the client may recover ``stream`` from ``seen``: a position this server gave it."""
        return self.epoch == epoch and recovery.token_allows(
            secret, self.websocket.path, stream, epoch, token, seen
        )

    def _write_catch_up(
        self, stream: str, missed: Replay | None, position: int, epoch: str, secret: bytes
    ) -> None:
        """A returning client's ``resync`` or missed frames (None: it asked for none), then its position."""
        if missed is not None:
            if missed.resync:
                self._write(protocol.encode(protocol.RESYNC_EVENT, {"stream": stream}))
            for frame in missed.frames:
                self._write(frame)
        self._signing = (epoch, secret)
        self._write_position(stream, position)

    def _write_position(self, stream: str, seq: int) -> None:
        if self._signing is None:  # no position handed out yet (the backplane was down)
            return
        epoch, secret = self._signing
        grant = self._grants.get(stream)
        if grant is None:
            grant = self._grants[stream] = recovery.new_grant()
        token = recovery.position_token(secret, self.websocket.path, stream, epoch, seq, grant=grant)
        data = {"stream": stream, "seq": seq, "epoch": epoch, "token": token}
        self._write(protocol.encode(protocol.STREAM_EVENT, data))

    def _write_held(self, stream: str, seq: int, frame: bytes | None) -> None:
        if frame is None:
            self._write_position(stream, seq)
        else:
            self._write(frame)

    async def _catch_up_shared(self, stream: str, seconds: float) -> None:
        """`catch_up` with frames numbered and kept by the broker, for every process.

        Every frame of the stream that reached this process since the connection joined it was
        held; once the broker's read is behind them all, the client gets, in order: what it
        missed (or ``resync``), its position, then the held frames it has not had yet.
        """
        seen, token = self.positions.pop(stream, None), self.tokens.pop(stream, None)
        broker = self.websocket.server.broker
        connection = self.connection
        try:
            # A position no server hands out reads nothing: it earns a resync whatever Redis keeps.
            wanted = None if seen is None or seen == recovery.UNUSABLE else seen
            shared = await broker.replay_since(self.websocket.path, stream, wanted, seconds)
        except ConnectionError as error:
            if not connection.is_closed and broker.call_when_replay_ready(connection):
                # Redis went away during the read: read again once it is back.
                logger.info("Catch-up of %r for %r waits for the backplane: %s", stream, connection, error)
                if seen is not None:
                    self.positions[stream], self.tokens[stream] = seen, token
                self.waiting[stream] = None
                return
            logger.warning("Recovery of %r for %r unavailable: %s", stream, connection, error)
            with connection.outbox.ahead_of_order():  # see below
                if seen is not None:
                    self._write(protocol.encode(protocol.RESYNC_EVENT, {"stream": stream}))
                for seq, frame in self.held.pop(stream, []):
                    self._write_held(stream, seq, frame)
            return
        frames = None
        vouched = seen is not None and self._vouched(stream, seen, token, shared.epoch, shared.secret)
        # Spent across processes; frames reaching this process meanwhile are still held.
        if seen is not None and vouched and await self._spend_shared(token, seconds):
            frames = recovery.missed_since(shared.last, shared.frames, seen)
        held = self.held.pop(stream, [])
        if connection.is_closed:  # gone while Redis answered: nothing to write, nothing lost
            return
        if frames is not None:
            missed: Replay | None = Replay(frames)
            position, held = shared.last, [(n, frame) for n, frame in held if n > shared.last]
        else:
            missed = None if seen is None else Replay(resync=True)
            # Nothing replayed: the client gets what reached this process after it joined.
            position = held[0][0] - 1 if held else shared.last
        # Ahead of the writes waiting in the connection's order for a frame this process sent to be
        # numbered (someone talked as the client joined): every frame of the stream numbered before
        # the read is here (replayed or held), and those after it come after, so nothing of this
        # stream may wait behind such a frame. Left in the order, the client got that new frame first.
        with connection.outbox.ahead_of_order():
            self._write_catch_up(stream, missed, position, shared.epoch, shared.secret)
            for seq, frame in held:
                self._write_held(stream, seq, frame)

    # Frames numbered by the backplane, on their way to this connection -----------------------------

    def write_numbered(self, stream: str, seq: int, frame: bytes) -> None:
        """Write a frame numbered by the broker, or hold it while the stream's catch-up runs."""
        held = self.held.get(stream) if self.held else None
        if held is None:
            self._write(frame)
        else:
            held.append((seq, frame))

    def write_position(self, stream: str, seq: int) -> None:
        """Tell the client that frame ``seq`` of ``stream``, which it was left out of (``skip``),
        is behind it: its numbers go on without a gap (or hold it while the catch-up runs)."""
        held = self.held.get(stream) if self.held else None
        if held is None:
            self._write_position(stream, seq)
        else:
            held.append((seq, None))

    def write_resync(self, stream: str, position: int, epoch: str, secret: bytes) -> None:
        """Tell the client that frames of ``stream`` up to ``position`` are lost: ``resync``, then
        its new position (the broker lost them while it resubscribed and Redis no longer keeps them)."""
        if stream in self.held:  # its catch-up, still running, will tell the client where it stands
            return
        # Ahead of any write waiting for a numbered frame: the broker found the loss on its way to
        # deliver that very frame, which must come after the resync.
        with self.connection.outbox.ahead_of_order():
            self._write_catch_up(stream, Replay(resync=True), position, epoch, secret)
