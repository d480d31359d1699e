"""WebSocketHandler: one client connection; decodes its frames and dispatches them to event functions."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import inspect
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.ioloop
import tornado.iostream
import tornado.web
import tornado.websocket

from tornado_websockets import codec, delivery, framereader, inflow, loops, protocol, recovery, recovery_redis
from tornado_websockets import websocket as websocket_module
from tornado_websockets.events import RESERVED_EVENTS, EventFunction, is_async_callable
from tornado_websockets.exceptions import (
    ConnectionDenied,
    EventError,
    InvalidInstanceError,
    PayloadError,
    ProtocolError,
)
from tornado_websockets.limits import BACKLOG_CLOSE_CODE, RATE_CLOSE_CODE, RateLimiter
from tornado_websockets.presence import JOINED_EVENT, LEFT_EVENT, display_name, identity
from tornado_websockets.recovery import BROADCAST_STREAM, Replay

if TYPE_CHECKING:
    from tornado_websockets.server import Server
    from tornado_websockets.websocket import WebSocket

T = TypeVar("T")

__all__ = ["CONNECT_HOOK_SETTING", "ORIGIN_CHECK_SETTING", "RESYNC_EVENT", "STREAM_EVENT", "WebSocketHandler"]

logger = logging.getLogger(__name__)

#: Sent with recovery on: where the client stands in a stream, so that it can recover even if
#: nothing reaches it before it drops.
STREAM_EVENT = "stream"
#: Sent with recovery on when the frames a client missed are no longer kept: reload your state.
RESYNC_EVENT = "resync"

#: The JavaScript client's liveness probe: answered with `PONG_EVENT` on a path that does not bind it.
PING_EVENT = "ping"
PONG_EVENT = "pong"
_PONG = protocol.encode(PONG_EVENT, {})

#: Tornado application setting: an async callable run with each connection before its guards (the
#: Django integration loads ``socket.user`` and ``socket.session`` there).
CONNECT_HOOK_SETTING = "tornado_websockets_connect_hook"
#: Tornado application setting: ``check(origin, request_host) -> bool`` replacing Tornado's
#: same-origin check (the Django integration sets its origin policy there).
ORIGIN_CHECK_SETTING = "tornado_websockets_origin_check"


class WebSocketHandler(tornado.websocket.WebSocketHandler):
    """One WebSocket connection, handed to event functions as ``socket``.

    Created by Tornado for each client of a `~tornado_websockets.websocket.WebSocket` path; do not
    instantiate it yourself. Frames of one connection are handled one at a time, in order: each
    ``async def`` event function runs as an asyncio task of its own (``asyncio.timeout``,
    ``TaskGroup``, anyio and ``ContextVar`` behave as anywhere else), each plain ``def`` in a
    worker thread, and the connection's next message is handed over once it has returned. The
    connection is read meanwhile (`tornado_websockets.inflow`): pings, pongs and the client's
    close are handled at once; `closed` tells a running function that its client left.

    The connection belongs to ``loop``, the asyncio loop that accepted it. Every public method is
    safe from any thread: called from another thread (a plain ``def`` function's worker, a view),
    it is handed to that loop, in order with the caller's other calls, and the methods whose
    effect can be read (`join`, `leave`, `close`, ``user_id``) return once it is done.

    Attributes an event function may use: ``id`` (unique), ``request`` (the upgrade request),
    ``path_params`` (the route variables), ``state`` (this connection's own namespace),
    ``user_id`` and ``user_state`` (shared by one user's connections), ``rooms``.
    """

    websocket: WebSocket
    #: With Django: the user of the upgrade request's session (``AnonymousUser`` without one).
    user: Any = None
    #: With Django: the session of the upgrade request.
    session: Any = None

    def initialize(self, websocket: WebSocket) -> None:
        """Link this connection to its `~tornado_websockets.websocket.WebSocket`."""
        if not isinstance(websocket, websocket_module.WebSocket):
            raise InvalidInstanceError(websocket, "tornado_websockets.websocket.WebSocket")
        self.websocket = websocket
        #: The runtime this connection's path belongs to (its broker, executor and limits).
        self.runtime: Server = websocket.server
        #: The asyncio loop that serves this connection; work from other threads is handed to it.
        self.loop: asyncio.AbstractEventLoop = (
            loops.running_loop() or tornado.ioloop.IOLoop.current().asyncio_loop  # type: ignore[attr-defined]
        )
        self._inbox = loops.inbox(self.loop)
        self.id = uuid.uuid4().hex
        self.state = SimpleNamespace()
        self.path_params: dict[str, Any] = {}
        self._user_id: Hashable | None = None
        self._opened = False
        self._recovery: dict[str, int] = {}
        self._tokens: dict[str, object] = {}  # what the client sent with each position
        self._recovery_epoch: str | None = None
        #: Shared recovery: numbered frames held, per stream, until its catch-up is written.
        self._held: dict[str, list[tuple[int, bytes | None]]] = {}  # None: its position only
        self._signing: tuple[str, bytes] | None = None  # the epoch and secret of the last position
        self._catch_ups: set[asyncio.Future[None]] = set()
        #: Streams whose shared catch-up waits for the backplane to connect (see `backplane_ready`).
        self._waiting: dict[str, None] = {}
        self._too_slow = False  # closed for not reading
        #: Writes held behind frames this process sent to be numbered by the backplane, so that
        #: the client gets a function's frames in the order it made them (see `expect_numbered`).
        self._order: collections.deque[list[Any]] | None = None
        self._unordered = False
        self._order_timer: asyncio.TimerHandle | None = None
        self._closed: asyncio.Future[None] | None = None  # `closed`, made when first asked for
        self._ended = False
        #: Tasks of ``cancel_on_close`` event functions still running.
        self._cancel_on_close: set[asyncio.Task[None]] = set()
        self.limits = websocket.limits or self.runtime.limits
        self._limiter = (
            None if self.limits.max_rate is None else RateLimiter(self.limits.max_rate, self.limits.burst)
        )

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"<WebSocketHandler {self.websocket.path!r} {self.id[:8]} {state}>"

    @property
    def is_closed(self) -> bool:
        """True once the connection is closing or closed."""
        connection = self.ws_connection
        return connection is None or connection.is_closing()

    @property
    def closed(self) -> asyncio.Future[None]:
        """A future resolved once the connection is closed, by either side; use it on the loop.

        ``await socket.closed`` waits for the client to leave; ``socket.closed.done()`` tells
        whether it has; ``asyncio.wait([work, socket.closed], return_when=FIRST_COMPLETED)`` stops
        waiting for work the client will never see. See also ``@ws.on(cancel_on_close=True)``.
        """
        if self._closed is None:
            self._closed = self.loop.create_future()
            if self._ended:
                self._closed.set_result(None)
        return self._closed

    def _end(self) -> None:
        """The connection is over: resolve `closed`, cancel the ``cancel_on_close`` functions."""
        if self._ended:
            return
        self._ended = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        for task in list(self._cancel_on_close):
            task.cancel()

    # Limits: Tornado reads these properties when it accepts the connection ---------------------

    @property
    def max_message_size(self) -> int:
        """Bytes in one inbound message; a larger one closes the connection with 1009."""
        return self.limits.max_message_size

    @property
    def ping_interval(self) -> float | None:
        """Seconds between keepalive pings."""
        return self.limits.ping_interval

    @property
    def ping_timeout(self) -> float | None:
        """Seconds to wait for a pong before closing the connection."""
        return self.limits.ping_timeout

    # Identity and state -------------------------------------------------------------------------

    @property
    def user_id(self) -> Hashable | None:
        """Who is connected, when known (the Django user's pk, or what a guard set); else None."""
        return self._user_id

    @user_id.setter
    def user_id(self, value: Hashable | None) -> None:
        self._on_loop_wait(self._set_user_id, value)

    def _set_user_id(self, value: Hashable | None) -> None:
        if self._opened and self._user_id is not None:
            self.websocket.detach_user(self._user_id)
        self._user_id = value
        if self._opened and value is not None:
            self.websocket.attach_user(value)

    @property
    def user_state(self) -> SimpleNamespace:
        """State shared by every live connection of this user on this path."""
        if self._user_id is None:
            raise AttributeError("user_state needs a known user: set socket.user_id (or log in with Django).")
        return self.websocket.user_state(self._user_id)

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection is in (a snapshot; safe from any thread)."""
        return self.websocket.rooms.rooms_of(self)

    def join(self, room: str) -> None:
        """Enter ``room``: emits to the room now reach this connection.

        Safe from any thread; once it returns, ``room`` is in `rooms`. With recovery on, a client
        coming back first gets what it missed in the room.

        :raise tornado.websocket.WebSocketClosedError: the loop serving the connection has stopped.
        """
        if not isinstance(room, str) or not room:
            raise TypeError(f"A room name should be a non-empty str, not {room!r}.")
        self._on_loop_wait(self._join, room)

    def leave(self, room: str) -> None:
        """Leave ``room``; leaving a room one is not in does nothing.

        Safe from any thread; once it returns, ``room`` is no longer in `rooms`.
        """
        self._on_loop_wait(self._leave, room)

    # Handing work to the connection's loop ----------------------------------------------------

    def _on_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on this connection's loop: now if this is it, else queued in order."""
        if loops.running_loop() is self.loop:
            callback(*args)
            return
        try:
            self._inbox.put(callback, *args)
        except loops.LoopUnavailableError:
            raise tornado.websocket.WebSocketClosedError() from None

    def _on_loop_wait(self, callback: Callable[..., T], *args: Any) -> T:
        """`_on_loop`, returning once it has run (and with its result)."""
        try:
            return loops.call_wait(self.loop, callback, *args)
        except loops.LoopUnavailableError:
            raise tornado.websocket.WebSocketClosedError() from None

    def _join(self, room: str) -> None:
        if self.is_closed or room in self.websocket.rooms.rooms_of(self):
            return
        self._catch_up(room)  # before joining: the missed frames come before any new one
        first = self.websocket.presence_events and not self._identity_in(room)
        self.websocket.rooms.join(room, self)
        # A broker sharing presence announces once per user across processes, when Redis counted.
        if not self.runtime.broker.presence_changed(self, room, True) and first:
            self._announce(JOINED_EVENT, room)

    def _leave(self, room: str) -> None:
        if room not in self.websocket.rooms.rooms_of(self):
            return
        self.websocket.rooms.leave(room, self)
        if self.awaits_numbered(room):  # emitted to the room, then left: that frame is still its own
            self.websocket.await_after_leave(room, self)
        if self.websocket.replay is not None and not self.is_closed:  # the client forgets its position
            self.write_frame(protocol.encode(STREAM_EVENT, {"stream": room, "left": True}))
        shared = self.runtime.broker.presence_changed(self, room, False)
        if not shared and self.websocket.presence_events and not self._identity_in(room):
            self._announce(LEFT_EVENT, room)

    def _identity_in(self, room: str) -> bool:
        """Whether this connection's user already has a connection in ``room`` (this one excepted)."""
        me = identity(self)
        return any(identity(other) == me for other in self.websocket.rooms.members(room) if other is not self)

    def _announce(self, event: str, room: str) -> None:
        data = {"room": room, "user": self.user_id, "name": display_name(self)}
        self.websocket.emit(event, data, room=room, skip=self)

    def _catch_up(self, stream: str) -> None:
        """With recovery on: replay what the client missed of ``stream``, then tell its position."""
        replay = self.websocket.replay
        if replay is None:
            return
        broker = self.runtime.broker
        if broker.shares_replay:
            # Frames of the stream that reach this process from now on wait for the catch-up.
            self._held[stream] = []
            # Redis connecting or unreachable: no position can be signed yet; the catch-up runs
            # once it is connected, else the client could never recover.
            if not broker.replay_ready and broker.call_when_replay_ready(self):
                self._waiting[stream] = None
            else:
                self._start_catch_up(stream, replay.seconds)
            return
        # A position serves once: joining the room again later replays nothing from it.
        seen, token = self._recovery.pop(stream, None), self._tokens.pop(stream, None)
        missed = None
        if seen is not None:
            vouched = self._vouched(stream, seen, token, replay.epoch, replay.secret)
            missed = replay.since(stream, seen) if vouched else Replay(resync=True)
        self._write_catch_up(stream, missed, replay.position(stream), replay.epoch, replay.secret)

    def _start_catch_up(self, stream: str, seconds: float) -> None:
        task = asyncio.ensure_future(self._catch_up_shared(stream, seconds))
        self._catch_ups.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._catch_ups.discard)

    def backplane_ready(self) -> None:
        """The backplane connected: run the catch-ups that waited for it (safe from any thread)."""
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self._on_loop(self._catch_up_waiting)

    def _catch_up_waiting(self) -> None:
        waiting, self._waiting = self._waiting, {}
        replay = self.websocket.replay
        for stream in waiting:
            member = stream == BROADCAST_STREAM or stream in self.websocket.rooms.rooms_of(self)
            if self.is_closed or replay is None or not member:  # gone, or left the room meanwhile
                self._held.pop(stream, None)
            else:
                self._start_catch_up(stream, replay.seconds)

    def _vouched(self, stream: str, seen: int, token: object, epoch: str, secret: bytes) -> bool:
        """Whether the client may recover ``stream`` from ``seen``: a position this server gave it."""
        return self._recovery_epoch == epoch and recovery.token_allows(
            secret, self.websocket.path, stream, epoch, token, seen
        )

    def _write_catch_up(
        self, stream: str, missed: Replay | None, position: int, epoch: str, secret: bytes
    ) -> None:
        """A returning client's ``resync`` or missed frames (None: it asked for none), then its position."""
        if missed is not None:
            if missed.resync:
                self.write_frame(protocol.encode(RESYNC_EVENT, {"stream": stream}))
            for frame in missed.frames:
                self.write_frame(frame)
        self._signing = (epoch, secret)
        self._write_position(stream, position)

    def _write_position(self, stream: str, seq: int) -> None:
        if self._signing is None:  # no position handed out yet (the backplane was down)
            return
        epoch, secret = self._signing
        token = recovery.position_token(secret, self.websocket.path, stream, epoch, seq)
        data = {"stream": stream, "seq": seq, "epoch": epoch, "token": token}
        self.write_frame(protocol.encode(STREAM_EVENT, data))

    def _write_held(self, stream: str, seq: int, frame: bytes | None) -> None:
        if frame is None:
            self._write_position(stream, seq)
        else:
            self.write_frame(frame)

    async def _catch_up_shared(self, stream: str, seconds: float) -> None:
        """`_catch_up` with frames numbered and kept by the broker, for every process.

        Every frame of the stream that reached this process since the connection joined it was
        held; once the broker's read is behind them all, the client gets, in order: what it
        missed (or ``resync``), its position, then the held frames it has not had yet.
        """
        seen, token = self._recovery.pop(stream, None), self._tokens.pop(stream, None)
        broker = self.runtime.broker
        try:
            # A position no server hands out reads nothing: it earns a resync whatever Redis keeps.
            wanted = None if seen is None or seen == recovery.UNUSABLE else seen
            shared = await broker.replay_since(self.websocket.path, stream, wanted, seconds)
        except ConnectionError as error:
            if not self.is_closed and broker.call_when_replay_ready(self):
                # Redis went away during the read: read again once it is back.
                logger.info("Catch-up of %r for %r waits for the backplane: %s", stream, self, error)
                if seen is not None:
                    self._recovery[stream], self._tokens[stream] = seen, token
                self._waiting[stream] = None
                return
            logger.warning("Recovery of %r for %r unavailable: %s", stream, self, error)
            if seen is not None:
                self.write_frame(protocol.encode(RESYNC_EVENT, {"stream": stream}))
            for seq, frame in self._held.pop(stream, []):
                self._write_held(stream, seq, frame)
            return
        held = self._held.pop(stream, [])
        if self.is_closed:  # gone while Redis answered: nothing to write, nothing lost
            return
        frames = None
        if seen is not None and self._vouched(stream, seen, token, shared.epoch, shared.secret):
            frames = recovery_redis.missed(shared, seen)
        if frames is not None:
            missed: Replay | None = Replay(frames)
            position, held = shared.last, [(n, frame) for n, frame in held if n > shared.last]
        else:
            missed = None if seen is None else Replay(resync=True)
            # Nothing replayed: the client gets what reached this process after it joined.
            position = held[0][0] - 1 if held else shared.last
        self._write_catch_up(stream, missed, position, shared.epoch, shared.secret)
        for seq, frame in held:
            self._write_held(stream, seq, frame)

    def write_numbered(self, stream: str, seq: int, frame: bytes) -> None:
        """Write a frame numbered by the broker, or hold it while the stream's catch-up runs."""
        held = self._held.get(stream) if self._held else None
        if held is None:
            self.write_frame(frame)
        else:
            held.append((seq, frame))

    def write_position(self, stream: str, seq: int) -> None:
        """Tell the client that frame ``seq`` of ``stream``, which it was left out of (``skip``),
        is behind it: its numbers go on without a gap (or hold it while the catch-up runs)."""
        held = self._held.get(stream) if self._held else None
        if held is None:
            self._write_position(stream, seq)
        else:
            held.append((seq, None))

    def write_resync(self, stream: str, position: int, epoch: str, secret: bytes) -> None:
        """Tell the client that frames of ``stream`` up to ``position`` are lost: ``resync``, then
        its new position (the broker lost them while it resubscribed and Redis no longer keeps them)."""
        if stream in self._held:  # its catch-up, still running, will tell the client where it stands
            return
        # Ahead of any write waiting for a numbered frame: the broker found the loss on its way to
        # deliver that very frame, which must come after the resync.
        unordered, self._unordered = self._unordered, True
        try:
            self._write_catch_up(stream, Replay(resync=True), position, epoch, secret)
        finally:
            self._unordered = unordered

    # Tornado callbacks -------------------------------------------------------------------------

    def check_origin(self, origin: str) -> bool:
        """Tornado's same-origin check, or the policy set in the application settings."""
        policy = self.settings.get(ORIGIN_CHECK_SETTING)
        if policy is None:
            return super().check_origin(origin)
        return bool(policy(origin, self.request.host))

    async def prepare(self) -> None:
        """Before the upgrade: read route variables, run the connect hook, then every guard."""
        self.path_params = self.websocket.route.convert(self.path_kwargs)
        hook = self.settings.get(CONNECT_HOOK_SETTING)
        if hook is not None:
            await hook(self)
        for guard in self.websocket.guards:
            try:
                allowed = await self._run(guard, {"socket": self})
            except ConnectionDenied as denied:
                raise tornado.web.HTTPError(denied.status, reason=denied.reason) from None
            if allowed is False:
                raise tornado.web.HTTPError(403)

    def open(self, *args: str, **kwargs: str) -> Awaitable[None] | None:
        """Register the connection, then run the ``open`` event function if one is bound."""
        # No Nagle delay: a second small frame (an emit, then the reply) would otherwise wait for
        # the client's delayed ACK, 40 ms and more, as Tornado's docs warn.
        self.set_nodelay(True)
        self.runtime.ensure_broker(self.loop)
        self._opened = True
        self._read_recovery_request()
        self._catch_up(BROADCAST_STREAM)
        self.websocket.connection_opened(self)
        self.websocket.metrics.connections_total += 1
        self.runtime.broker.presence_changed(self, None, True)
        if self._user_id is not None:
            self.websocket.attach_user(self._user_id)
        for module in self.websocket.modules:
            module.on_open(self)
        function = self.websocket.events.get("open")
        return None if function is None else self._dispatch(function, {}, None)

    def _read_recovery_request(self) -> None:
        """The client's last positions, sent as ``?recover={"epoch": e, "streams": {name: seq},
        "tokens": {name: token}}`` (a position without its token earns a ``resync``)."""
        raw = self.get_query_argument("recover", None)
        if raw is None or self.websocket.replay is None:
            return
        try:
            request = codec.loads(raw)
            self._recovery = recovery.read_positions(request["streams"])
            self._tokens = dict(request.get("tokens") or {})
            self._recovery_epoch = str(request["epoch"])
        except (ValueError, TypeError, KeyError, AttributeError):
            self.write_frame(protocol.warning_frame("The recover parameter could not be read."))

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        """Decode one frame and dispatch it; a bad frame earns a ``warning`` and nothing else.

        A frame that arrives once the connection is closing (the server closed it and the client
        did not listen) is dropped and counted as ``server_closed``.
        """
        if self.is_closed:
            delivery.record_drop(delivery.SERVER_CLOSED, self.websocket.path)
            return None
        metrics = self.websocket.metrics
        metrics.frames_in += 1
        metrics.bytes_in += len(message)
        if self._limiter is not None and not self._limiter.allow():
            self._refuse_rate()
            return None
        try:
            frame = protocol.decode(message)
        except ProtocolError as error:
            self.write_frame(protocol.warning_frame(error.message))
            if error.frame_id is not None:
                self.write_frame(protocol.ack_error_frame(error.frame_id, error.message))
            return None
        function = self.websocket.events.get(frame.event)
        if function is None and frame.event == PING_EVENT:
            # The JavaScript client's liveness probe, on a path that binds no "ping" of its own.
            self.write_frame(_PONG if frame.id is None else protocol.ack_frame(frame.id, {}))
            return None
        if function is None or frame.event in RESERVED_EVENTS:
            if frame.event in RESERVED_EVENTS:
                message = (
                    f'Event "{frame.event}" is reserved: the server runs it itself on '
                    f"{'connect' if frame.event == 'open' else 'disconnect'}; a client cannot send it."
                )
            else:
                message = f'Event "{frame.event}" is not bound on "{self.websocket.path}".'
            self.write_frame(protocol.warning_frame(message, event=frame.event))
            if frame.id is not None:
                self.write_frame(protocol.ack_error_frame(frame.id, message, frame.event))
            return None
        return self._dispatch(function, frame.data, frame.id)

    def on_close(self) -> None:
        """Unlink the connection, then run the ``close`` event function if one is bound.

        Functions still running for this connection go on (their emits to it are counted drops)
        unless bound with ``cancel_on_close``: those are cancelled first.
        """
        self._end()
        if not self._opened:  # the upgrade failed before open() ran
            return
        self._unlink()
        function = self.websocket.events.get("close")
        if function is not None:
            pending = self._dispatch(function, {}, None)
            if pending is not None:
                self.runtime.keep(pending)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection; it leaves ``ws.handlers`` and its rooms at once.

        Safe from any thread; once it returns, `is_closed` is True. Closing a connection whose
        loop has stopped does nothing: it went with its loop.
        """
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self._on_loop_wait(self._close, code, reason)

    def _close(self, code: int | None, reason: str | None) -> None:
        self._unlink()
        super().close(code, reason)
        self._end()

    def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
        """The protocol of the connection: frames read in bulk (`tornado_websockets.framereader`).

        With permessage-deflate, or the bulk reader switched off, Tornado's own reader, whose
        close for a too large message still reaches the client (it drains the input first).
        """
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        params = tornado.websocket._WebSocketParams(
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            max_message_size=self.max_message_size,
            compression_options=self.get_compression_options(),
        )
        return framereader.frame_protocol(self, _Protocol13(self, False, params))

    def _refuse_rate(self) -> None:
        assert self._limiter is not None
        if self._limiter.refused == 1:
            limit = self.limits.max_rate
            self.write_frame(protocol.warning_frame(f"Too many events: slow down to {limit} per second."))
        elif (
            self._limiter.refused > self.limits.burst and not self.is_closed
        ):  # once: frames in flight follow
            logger.warning("Closing %r: it kept sending past the rate limit", self)
            self.close(RATE_CLOSE_CODE, "Rate limit exceeded")

    def _unlink(self) -> None:
        with contextlib.suppress(ValueError):  # already unlinked by close()
            self.websocket.handlers.remove(self)
            for room in self.websocket.rooms.rooms_of(self):
                self._leave(room)
            if self._user_id is not None:
                self.websocket.detach_user(self._user_id)
            self.runtime.broker.presence_changed(self, None, False)

    def forget(self) -> None:
        """Unlink a connection whose loop has gone without closing it (nothing can be written)."""
        with contextlib.suppress(ValueError):
            self.websocket.handlers.remove(self)
            for room in self.websocket.rooms.rooms_of(self):
                self.websocket.rooms.leave(room, self)
            if self._user_id is not None:
                self.websocket.detach_user(self._user_id)
            self.runtime.broker.presence_changed(self, None, False)

    # Dispatch ------------------------------------------------------------------------------------

    async def _run(self, callback: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """Call a guard: ``async def`` on the loop, plain ``def`` in a thread of the connect pool."""
        if is_async_callable(callback):
            return await callback(**kwargs)
        # A plain def may block or use the Django ORM, which refuses to run on the loop. Not in
        # the event functions' pool: a new client must not wait for slow functions to finish.
        call = functools.partial(contextvars.copy_context().run, callback, **kwargs)
        result = await self.loop.run_in_executor(self.runtime.get_connect_executor(), call)
        return await result if inspect.isawaitable(result) else result

    def _dispatch(
        self, function: EventFunction, data: Any, frame_id: protocol.FrameId | None
    ) -> Awaitable[None] | None:
        """Start an event function; returns what Tornado waits for before the next frame, if anything.

        ``async def``: a task of its own (started eagerly where Python has it). Plain ``def``: a
        worker thread, whose emits and completion reach the loop together. ``def`` bound with
        ``blocking=False``: called right here, on the loop.
        """
        kwargs = self._arguments(function, data, frame_id)
        if kwargs is None:
            return None
        self.runtime.function_started(self.loop)
        started = time.perf_counter()
        if function.is_async:
            task = _start_task(self.loop, self._await(function, kwargs, frame_id, started))
            # Started after the end (only ``close`` can be): nothing left to cancel it for.
            if task is not None and function.cancel_on_close and not self._ended:
                self._cancel_on_close.add(task)
                task.add_done_callback(self._cancel_on_close.discard)
            return task
        if not function.blocking:
            try:
                result = function.callback(**kwargs)
            except Exception as error:
                self._finish(function, frame_id, started, None, error)
            else:
                self._finish(function, frame_id, started, result, None)
            return None
        return self._in_worker(function, kwargs, frame_id, started)

    def _arguments(
        self, function: EventFunction, data: Any, frame_id: protocol.FrameId | None
    ) -> dict[str, Any] | None:
        """The function's keyword arguments, or None after telling the client its data is wrong."""
        if function.converter is not None:
            try:
                data = function.converter(data)
            except PayloadError as error:
                message = str(error)
                self.write_frame(
                    protocol.warning_frame(message, event=function.name, path=error.path, reason=error.reason)
                )
                if frame_id is not None:
                    self.write_frame(protocol.ack_error_frame(frame_id, message, function.name))
                return None
        return function.arguments(self.websocket.context, self, data)

    async def _await(
        self,
        function: EventFunction,
        kwargs: dict[str, Any],
        frame_id: protocol.FrameId | None,
        started: float,
    ) -> None:
        try:
            result = await function.callback(**kwargs)
        except asyncio.CancelledError as error:
            task = asyncio.current_task()
            if task is None or task.cancelling():  # this very task is cancelled: let it end so
                self._done(started)
                raise
            # A future the function awaited was cancelled by something else: a failure like any.
            self._finish(function, frame_id, started, None, error)
        except Exception as error:
            self._finish(function, frame_id, started, None, error)
        else:
            self._finish(function, frame_id, started, result, None)

    def _in_worker(
        self,
        function: EventFunction,
        kwargs: dict[str, Any],
        frame_id: protocol.FrameId | None,
        started: float,
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.loop.create_future()
        inbox = self._inbox
        finish = self._finish_in_loop
        loop, runtime = self.loop, self.runtime

        def done(result: Any, error: BaseException | None) -> None:  # in the worker thread
            # One hand-over for the completion; emits the call made are queued before it in the
            # same inbox, so they and the reply usually reach the loop in one wake-up.
            ended = functools.partial(runtime.function_ended, loop)  # if the loop never runs finish
            try:
                inbox.put(finish, future, function, frame_id, started, result, error, on_lost=ended)
            except loops.LoopUnavailableError:  # the loop went, and the client with it: no reply
                ended()

        # A context of its own, as a task has: what one call sets is not seen by the next one.
        call = functools.partial(contextvars.copy_context().run, function.callback, **kwargs)
        self.runtime.run_in_worker(call, done)
        return future

    def _finish_in_loop(
        self,
        future: asyncio.Future[None],
        function: EventFunction,
        frame_id: protocol.FrameId | None,
        started: float,
        result: Any,
        error: BaseException | None,
    ) -> None:
        if error is None and inspect.isawaitable(result):  # a def that returned a coroutine
            future.set_result(None)
            self.runtime.keep(self._await_result(function, frame_id, started, result))
            return
        self._finish(function, frame_id, started, result, error)
        if not future.done():
            future.set_result(None)

    async def _await_result(
        self, function: EventFunction, frame_id: protocol.FrameId | None, started: float, awaitable: Any
    ) -> None:
        try:
            result = await awaitable
        except Exception as error:
            self._finish(function, frame_id, started, None, error)
        else:
            self._finish(function, frame_id, started, result, None)

    def _done(self, started: float) -> None:
        self.runtime.function_ended(self.loop)
        self.websocket.metrics.latency.observe(time.perf_counter() - started)

    def _finish(
        self,
        function: EventFunction,
        frame_id: protocol.FrameId | None,
        started: float,
        result: Any,
        error: BaseException | None,
    ) -> None:
        """After an event function: count it, then send its reply or tell the client it failed."""
        self._done(started)
        if error is not None:
            if isinstance(error, EventError):
                self._reply_error(function.name, frame_id, error.message)
                return
            self.websocket.metrics.handler_errors += 1
            logger.error(
                'Event function for "%s" on "%s" raised', function.name, self.websocket.path, exc_info=error
            )
            self._reply_error(function.name, frame_id, protocol.failure_message(function.name))
            return
        if frame_id is not None:
            try:
                if function.reply is not None:
                    result = function.reply(result)
                self.write_frame(protocol.ack_frame(frame_id, result))
            except (TypeError, PayloadError):
                delivery.record_drop(delivery.ENCODING_ERROR, self.websocket.path)
                logger.exception(
                    'The reply of "%s" on "%s" cannot be encoded', function.name, self.websocket.path
                )
                self._reply_error(function.name, frame_id, protocol.failure_message(function.name))

    def _reply_error(self, event: str, frame_id: protocol.FrameId | None, message: str) -> None:
        if self.is_closed:
            return
        if frame_id is None:
            self.write_frame(protocol.error_frame(event, message))
        else:
            self.write_frame(protocol.ack_error_frame(frame_id, message, event))

    # Sending -------------------------------------------------------------------------------------

    def emit(self, event: str, data: dict[str, Any] | str | None = None) -> None:
        """Send ``{"event": event, "data": data}`` to this client only; safe from any thread.

        From another thread the frame is queued for the connection's loop, in order with the
        caller's other emits and the function's reply. To a closed connection (the client left
        while the function ran) the frame is dropped and counted as ``connection_closed``.

        :raise TypeError: ``event`` is not a str, or ``data`` is not a dict, a str or None.
        """
        frame = protocol.encode_emit(event, data)
        if self.is_closed:
            delivery.record_drop(delivery.CONNECTION_CLOSED, self.websocket.path)
            return
        if loops.running_loop() is self.loop:
            self._write(frame)
            return
        try:
            self._inbox.put(self._write, frame, size=len(frame), path=self.websocket.path)
        except loops.LoopUnavailableError:
            # The loop is gone, so is the connection: a counted drop, as for a closed one.
            delivery.record_drop(delivery.CONNECTION_CLOSED, self.websocket.path)

    def emit_warning(self, message: str) -> None:
        """Send a ``warning`` event, as the server does for frames it cannot understand.

        Safe from any thread.
        """
        self.write_frame(protocol.warning_frame(message))

    @property
    def backlog(self) -> int:
        """Bytes written to this connection that its socket has not taken yet."""
        stream = getattr(self.ws_connection, "stream", None)
        if stream is None:
            return 0
        # IOStream keeps no public count of its write buffer; these counters have done so since
        # Tornado 5 (listed in framereader.TORNADO_PRIVATE_NAMES, checked by its test).
        return int(stream._total_write_index - stream._total_write_done_index)

    def write_frame(self, frame: bytes) -> None:
        """Write an already encoded text frame; a frame that cannot be written counts as a drop.

        Safe from any thread (handed to the connection's loop). A client whose unflushed backlog
        would pass ``limits.max_backlog`` is closed with
        `~tornado_websockets.limits.BACKLOG_CLOSE_CODE`, so it cannot grow the server's memory;
        one frame written to an empty backlog is always taken, whatever its size, so a large
        frame to a client that keeps up does not close it.
        """
        if loops.running_loop() is self.loop:
            self._write(frame)
        else:
            try:
                self._inbox.put(self._write, frame, size=len(frame), path=self.websocket.path)
            except loops.LoopUnavailableError:
                delivery.record_drop(delivery.CONNECTION_CLOSED, self.websocket.path)

    def _write(self, frame: bytes) -> None:
        """`write_frame` on the connection's loop."""
        if self._order is not None and not self._unordered:
            self._order.append([None, functools.partial(self._write, frame)])
            return
        path = self.websocket.path
        if self.is_closed:
            delivery.record_drop(delivery.CONNECTION_CLOSED, path)
            return
        backlog = self.backlog
        if backlog and backlog + len(frame) > self.limits.max_backlog:
            delivery.record_drop(delivery.BACKLOG_BOUND, path)
            self._too_slow = True  # what its backlog still holds will count as slow_consumer
            logger.warning("Closing %r: %d bytes not read by the client", self, backlog)
            # Tornado aborts the stream if the close handshake does not finish within its
            # close timeout, so the memory held stays bounded by max_backlog meanwhile.
            self._close(BACKLOG_CLOSE_CODE, "Client too slow")
            return
        try:
            future = _write_text(self, frame)
        except (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            delivery.record_drop(delivery.CONNECTION_CLOSED, path)
            return
        metrics = self.websocket.metrics
        metrics.frames_out += 1
        metrics.bytes_out += len(frame)
        if future.done():  # flushed at once, as it is to a client that keeps up: no callback to run
            self._written(future)
        else:
            future.add_done_callback(self._written)

    # One order of delivery, whatever the broker -------------------------------------------------

    def expect_numbered(self, stream: str) -> None:
        """A frame for this connection went to the backplane to be numbered (on the loop).

        Until it comes back (`fill_numbered`), or `ORDER_TIMEOUT` passes, what is written to the
        connection waits behind it: the client sees ``ws.emit`` then ``socket.emit`` then the
        reply in that order, as it does with the in-process broker.
        """
        if self._order is None:
            self._order = collections.deque()
            self._order_timer = self.loop.call_later(ORDER_TIMEOUT, self._give_up_order)
        self._order.append([stream, None])

    def awaits_numbered(self, stream: str) -> bool:
        """Whether a frame of ``stream`` sent to the backplane to be numbered is still awaited."""
        order = self._order
        return order is not None and any(entry[0] == stream and entry[1] is None for entry in order)

    def fill_numbered(self, stream: str, write: Callable[[], None]) -> bool:
        """Write a numbered frame this process sent in its place in the order; False: none awaited."""
        if self._order is None:
            return False
        for entry in self._order:
            if entry[0] == stream and entry[1] is None:
                entry[1] = write
                self._flush_order()
                return True
        return False

    def _flush_order(self) -> None:
        order = self._order
        assert order is not None
        self._unordered = True
        try:
            while order and order[0][1] is not None:
                order.popleft()[1]()
        finally:
            self._unordered = False
        if not order:
            self._order = None
            if self._order_timer is not None:
                self._order_timer.cancel()
                self._order_timer = None

    def _give_up_order(self) -> None:
        """A numbered frame never came back (the backplane lost it): write what waited behind it."""
        self._order_timer = None
        order, self._order = self._order, None
        if not order:
            return
        missing = sum(1 for entry in order if entry[1] is None)
        logger.warning("%r: %d frame(s) never came back numbered; writing what waited", self, missing)
        self._unordered = True
        try:
            for _, write in order:
                if write is not None:
                    write()
        finally:
            self._unordered = False

    def _written(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            reason = delivery.SLOW_CONSUMER if self._too_slow else delivery.WRITE_FAILED
            delivery.record_drop(reason, self.websocket.path)


def _write_text(handler: WebSocketHandler, frame: bytes) -> asyncio.Future[None]:
    """Write one text frame, without the Task that ``write_message`` wraps around every write.

    ``WebSocketProtocol13.write_message`` creates a coroutine and a Task per call only to turn
    the stream's error into ``WebSocketClosedError``; on a fan-out that is one Task per client.
    Writing through the protocol's ``_write_frame`` skips it (the stream's own future still tells
    a failed write). With permessage-deflate negotiated (to keep compressing), or a Tornado
    without that method, the public ``write_message`` is used.
    """
    connection = handler.ws_connection
    if connection is None or getattr(connection, "_compressor", None) is not None:
        return handler.write_message(frame)
    write_frame = getattr(connection, "_write_frame", None)
    if write_frame is None:
        return handler.write_message(frame)
    connection._message_bytes_out += len(frame)  # type: ignore[attr-defined]
    future: asyncio.Future[None] = write_frame(True, 0x1, frame)
    return future


if sys.version_info >= (3, 12):

    def _start_task(
        loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None] | None:
        """Run an event function's coroutine as a task of its own, started eagerly.

        An eager task runs up to its first suspension right here; one that never suspends (it
        emits and returns) is done at once and Tornado has nothing to wait for.
        """
        task = asyncio.eager_task_factory(loop, coroutine)
        return None if task.done() and not task.cancelled() else task

else:

    def _start_task(
        loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None] | None:
        """Run an event function's coroutine as a task of its own (Tornado waits for it)."""
        return loop.create_task(coroutine)


#: Seconds a connection's writes wait behind a frame sent to the backplane to be numbered.
ORDER_TIMEOUT = 2.0


class _Protocol13(inflow.QueuingProtocol):
    """Tornado's protocol (permessage-deflate, or the bulk reader switched off); after closing for
    a too large message (1009) it drains the input."""

    _drain_next_abort = False
    _drain: asyncio.Task[None] | None = None

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == 1009:
            self._drain_next_abort = True  # Tornado aborts right after this close
        super().close(code, reason)

    def _abort(self) -> None:
        stream = self.stream
        if not self._drain_next_abort or stream is None or stream.closed():
            super()._abort()
            return
        self._drain_next_abort = False
        self.client_terminated = True  # ends the receive loop; the drain reads in its place
        self.server_terminated = True
        self._drain = asyncio.ensure_future(self._drain_then_abort(stream))

    def on_connection_close(self) -> None:
        if self._drain is None or self._drain.done():
            super().on_connection_close()
        else:  # the handler is told the connection closed; the stream goes when the drain ends
            self._drop_inbox()

    async def _drain_then_abort(self, stream: tornado.iostream.IOStream) -> None:
        """Read and drop what the client sends (no memory kept), until it closes the TCP
        connection or `~tornado_websockets.framereader.DRAIN_SECONDS` pass: the close frame
        reaches the client however large the message it was writing."""
        with contextlib.suppress(tornado.iostream.StreamClosedError, TimeoutError):
            async with asyncio.timeout(framereader.DRAIN_SECONDS):
                while True:
                    await stream.read_bytes(65536, partial=True)
        super()._abort()
