"""WebSocketHandler: one client connection; decodes its frames and dispatches them to event functions.

The handler is Tornado's side of a connection (its lifecycle, identity and rooms); it composes
the parts that do the work: `~tornado_websockets.dispatch.Dispatcher` (running event functions,
replies and errors), `~tornado_websockets.catchup.CatchUp` (what a returning client missed) and
`~tornado_websockets.outbox.Outbox` (the write path, its backlog bound and the order of frames
numbered by the backplane). Tornado's private names are reached only through
`tornado_websockets.framereader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Hashable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.ioloop
import tornado.web
import tornado.websocket

from tornado_websockets import binaryframes, delivery, framereader, loops, outbox, ownconnection, protocol
from tornado_websockets.catchup import CatchUp
from tornado_websockets.dispatch import Dispatcher
from tornado_websockets.exceptions import ConnectionDenied, InvalidInstanceError
from tornado_websockets.outbox import Outbox
from tornado_websockets.plumbing import DeprecatedPlumbing
from tornado_websockets.presence import display_name, identity
from tornado_websockets.protocol import JOINED_EVENT, LEFT_EVENT, RESYNC_EVENT, STREAM_EVENT
from tornado_websockets.recovery import BROADCAST_STREAM

if TYPE_CHECKING:
    from tornado_websockets.server import Server
    from tornado_websockets.types import Connection
    from tornado_websockets.websocket import WebSocket

T = TypeVar("T")

__all__ = ["CONNECT_HOOK_SETTING", "ORIGIN_CHECK_SETTING", "RESYNC_EVENT", "STREAM_EVENT", "WebSocketHandler"]

logger = logging.getLogger(__name__)

# Aliases, importable from here as before: the wire's names live in `tornado_websockets.protocol`,
# the order's timeout in `tornado_websockets.outbox`.
PING_EVENT = protocol.PING_EVENT
PONG_EVENT = protocol.PONG_EVENT
ORDER_TIMEOUT = outbox.ORDER_TIMEOUT


#: What ``initialize`` accepts: `~tornado_websockets.websocket.WebSocket`, which registers itself
#: (`serve_paths_of`) so that this module, below it, need not import it.
_path_classes: tuple[type, ...] = ()


def serve_paths_of(cls: type) -> None:
    """Let handlers serve instances of ``cls`` (called once, by `tornado_websockets.websocket`)."""
    global _path_classes
    if cls not in _path_classes:
        _path_classes = (*_path_classes, cls)


#: Tornado application setting: an async callable run with each connection before its guards (the
#: Django integration loads ``socket.user`` and ``socket.session`` there).
CONNECT_HOOK_SETTING = "tornado_websockets_connect_hook"
#: Tornado application setting: ``check(origin, request_host) -> bool`` replacing Tornado's
#: same-origin check (the Django integration sets its origin policy there).
ORIGIN_CHECK_SETTING = "tornado_websockets_origin_check"


class WebSocketHandler(DeprecatedPlumbing, tornado.websocket.WebSocketHandler):
    """One WebSocket connection, handed to event functions as ``socket``.

    Created by Tornado for each client of a `~tornado_websockets.websocket.WebSocket` path; do not
    instantiate it yourself. Frames of one connection are handled one at a time, in order: each
    ``async def`` event function runs as an asyncio task of its own (``asyncio.timeout``,
    ``TaskGroup``, anyio and ``ContextVar`` behave as anywhere else), each plain ``def`` in a
    worker thread, and the connection's next message is handed over once it has returned. The
    connection is read meanwhile (`tornado_websockets.framereader`): pings, pongs and the client's
    close are handled at once; `closed` tells a running function that its client left.

    The connection belongs to ``loop``, the asyncio loop that accepted it. Every public method is
    safe from any thread: called from another thread (a plain ``def`` function's worker, a view),
    it is handed to that loop, in order with the caller's other calls, and the methods whose
    effect can be read (`join`, `leave`, `close`, ``user_id``) return once it is done.

    Attributes an event function may use: ``id`` (unique), ``request`` (the upgrade request),
    ``path_params`` (the route variables), ``state`` (this connection's own namespace),
    ``user_id`` and ``user_state`` (shared by one user's connections), ``rooms``.
    """

    # Slots, not the instance's dict: Tornado's handler sets 27 attributes of its own, and a dict
    # of more than 30 keys stops sharing its keys with the class's other instances (about 1.2 KiB
    # more per connection). Attributes others set (``user``, a subclass's) still go to the dict.
    __slots__ = (
        "_closed",
        "_ended",
        "_inbox",
        "_opened",
        "_user_id",
        "catchup",
        "dispatcher",
        "id",
        "limits",
        "loop",
        "outbox",
        "path_params",
        "runtime",
        "state",
        "websocket",
    )

    websocket: WebSocket
    #: With Django: the user of the upgrade request's session (``AnonymousUser`` without one).
    user: Any = None
    #: With Django: the session of the upgrade request.
    session: Any = None

    def initialize(self, websocket: WebSocket) -> None:
        """Link this connection to its `~tornado_websockets.websocket.WebSocket`."""
        if not isinstance(websocket, _path_classes):
            raise InvalidInstanceError(websocket, "tornado_websockets.websocket.WebSocket")
        self.websocket = websocket
        #: The runtime this connection's path belongs to (its broker, executor and limits).
        self.runtime: Server = websocket.server
        #: The asyncio loop that serves this connection; work from other threads is handed to it.
        self.loop = loops.running_loop() or loops.asyncio_loop_of(tornado.ioloop.IOLoop.current())
        self._inbox = loops.inbox(self.loop)
        self.id = uuid.uuid4().hex
        self.state = SimpleNamespace()
        self.path_params: dict[str, Any] = {}
        self._user_id: Hashable | None = None
        self._opened = False
        self._closed: asyncio.Future[None] | None = None  # `closed`, made when first asked for
        self._ended = False
        self.limits = websocket.limits or self.runtime.limits
        #: The write path: every frame to this client, its backlog bound, its order.
        self.outbox = Outbox(
            owner=self,
            loop=self.loop,
            path=websocket.path,
            metrics=websocket.metrics,
            max_backlog=self.limits.max_backlog,
            # Through Tornado's stream until the connection is owned (then `Outbox.use`).
            send=functools.partial(framereader.write_text, self),
            backlog=functools.partial(framereader.write_backlog, self),
            is_closed=self._is_closing,
            close=self._close,
        )
        #: With recovery on: what this client missed, and the frames held while it catches up.
        self.catchup = CatchUp(self)
        #: Runs this connection's event functions and guards.
        self.dispatcher = Dispatcher(self, self._inbox, self.limits)

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

    def _is_closing(self) -> bool:
        connection = self.ws_connection
        return connection is None or connection.is_closing()

    def _end(self) -> None:
        """The connection is over: resolve `closed`, cancel the ``cancel_on_close`` functions."""
        if self._ended:
            return
        self._ended = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        self.dispatcher.end()

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

    # Encoding: JSON text, plus MessagePack frames when the client asked for them ----------------

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Accept ``tornado-websockets.msgpack`` (docs/protocol.rst) when MessagePack is installed."""
        if binaryframes.SUBPROTOCOL not in subprotocols:
            return None
        if binaryframes.available():
            return binaryframes.SUBPROTOCOL
        # Browsers fail a handshake whose offered subprotocol is not accepted: say why, server side.
        logger.warning(
            "A client of %s asked for %s: install the binary extra (django-tornado-websockets[binary]).",
            self.websocket.path,
            binaryframes.SUBPROTOCOL,
        )
        return None

    @property
    def binary(self) -> bool:
        """Whether this client negotiated MessagePack: it gets bytes as bytes, not as base64."""
        connection = self.ws_connection  # Tornado's selected_subprotocol asserts there is one
        return connection is not None and connection.selected_subprotocol == binaryframes.SUBPROTOCOL

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
        self.catchup.catch_up(room)  # before joining: the missed frames come before any new one
        first = self.websocket.presence_events and not self._identity_in(room)
        self.websocket.rooms.join(room, self)
        # A broker sharing presence announces once per user across processes, when Redis counted.
        if not self.runtime.broker.presence_changed(self, room, True) and first:
            self._announce(JOINED_EVENT, room)

    def _leave(self, room: str, ending: bool = False) -> None:
        if room not in self.websocket.rooms.rooms_of(self):
            return
        self.websocket.rooms.leave(room, self)
        # A connection that ends (a close, from either side) keeps its position and token, to come
        # back with; one that leaves the room forgets them, and its tokens recover nothing more.
        if not ending:
            self.catchup.left(room)
        if self.outbox.awaits_numbered(room):  # emitted to the room, then left: that frame is still its own
            self.websocket.await_after_leave(room, self)
        if self.websocket.replay is not None and not (ending or self.is_closed):
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

    def backplane_ready(self) -> None:
        """The backplane connected: run the catch-ups that waited for it (safe from any thread)."""
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self._on_loop(self.catchup.backplane_ready)

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
                allowed = await self.dispatcher.run_guard(guard, {"socket": self})
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
        raw = self.get_query_argument("recover", None)
        if raw is not None and self.websocket.replay is not None and not self.catchup.read_request(raw):
            self.write_frame(protocol.warning_frame("The recover parameter could not be read."))
        self.catchup.catch_up(BROADCAST_STREAM)
        self.websocket.connection_opened(self)
        self.websocket.metrics.connections_total += 1
        self.runtime.broker.presence_changed(self, None, True)
        if self._user_id is not None:
            self.websocket.attach_user(self._user_id)
        for module in self.websocket.modules:
            module.on_open(self)
        function = self.websocket.events.get("open")
        return None if function is None else self.dispatcher.dispatch(function, {}, None)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        """Decode one frame and dispatch it; a bad frame earns a ``warning`` and nothing else.

        A frame that arrives once the connection is closing (the server closed it and the client
        did not listen) is dropped and counted as ``server_closed``.
        """
        if self.is_closed:
            delivery.record_drop(delivery.SERVER_CLOSED, self.websocket.path)
            return None
        return self.dispatcher.receive(message)

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
            pending = self.dispatcher.dispatch(function, {}, None)
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
        """The protocol of the connection: frames read in bulk (`tornado_websockets.framereader`),
        on an asyncio transport after the upgrade where the application asks for it
        (`tornado_websockets.ownconnection`).

        With permessage-deflate, or the bulk reader switched off, Tornado's own reader, whose
        close for a too large message still reaches the client (it drains the input first).
        """
        return ownconnection.connection_protocol(
            self, self.ping_interval, self.ping_timeout, self.max_message_size
        )

    def _unlink(self) -> None:
        with contextlib.suppress(ValueError):  # already unlinked by close()
            self.websocket.handlers.remove(self)
            for room in self.websocket.rooms.rooms_of(self):
                self._leave(room, ending=True)
            if self._user_id is not None:
                self.websocket.detach_user(self._user_id)
            self.runtime.broker.presence_changed(self, None, False)

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
        self.write_frame(frame)

    def emit_warning(self, message: str) -> None:
        """Send a ``warning`` event, as the server does for frames it cannot understand.

        Safe from any thread.
        """
        self.write_frame(protocol.warning_frame(message))

    @property
    def backlog(self) -> int:
        """Bytes written to this connection that its socket has not taken yet."""
        return self.outbox.backlog

    def write_frame(self, frame: bytes) -> None:
        """Write an already encoded text frame; a frame that cannot be written counts as a drop.

        Safe from any thread (handed to the connection's loop). A client whose unflushed backlog
        would pass ``limits.max_backlog`` is closed with
        `~tornado_websockets.limits.BACKLOG_CLOSE_CODE`, so it cannot grow the server's memory;
        one frame written to an empty backlog is always taken, whatever its size, so a large
        frame to a client that keeps up does not close it.
        """
        if loops.running_loop() is self.loop:
            self.outbox.write(frame)
            return
        try:
            self._inbox.put(self.outbox.write, frame, size=len(frame), path=self.websocket.path)
        except loops.LoopUnavailableError:
            # The loop is gone, so is the connection: a counted drop, as for a closed one.
            delivery.record_drop(delivery.CONNECTION_CLOSED, self.websocket.path)


if TYPE_CHECKING:

    def _is_a_connection(socket: WebSocketHandler) -> Connection:
        return socket  # mypy checks that a handler is what the backplane expects of a connection
