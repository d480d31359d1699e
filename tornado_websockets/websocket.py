"""WebSocket: a path, the event functions bound on it, its rooms, and emit to its clients."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Hashable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar, overload

from tornado_websockets import loops, presence, protocol
from tornado_websockets.broker import Envelope
from tornado_websockets.events import EventFunction
from tornado_websockets.exceptions import EmitHandlerError, NotCallableError, WebSocketEventAlreadyBinded
from tornado_websockets.fanout import FanOut
from tornado_websockets.limits import Limits
from tornado_websockets.pathmetrics import PathMetrics
from tornado_websockets.presence import Member, Presence
from tornado_websockets.recovery import ReplayBuffer
from tornado_websockets.rooms import Rooms
from tornado_websockets.routes import Route
from tornado_websockets.server import default_server
from tornado_websockets.websockethandler import WebSocketHandler, serve_paths_of

if TYPE_CHECKING:
    from tornado_websockets.modules import Module
    from tornado_websockets.server import Server

__all__ = ["RoomTarget", "WebSocket"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: ``on()`` called without a callback (``@ws.on(name=...)``): distinct from ``on(None)``, an error.
_DECORATE: Any = object()

#: What ``skip`` accepts: a connection, or its ``id``.
Skip = WebSocketHandler | str | None


class WebSocket:
    """A WebSocket path and the events its clients may send.

    ::

        ws = WebSocket("/echo")

        @ws.on
        def message(socket, data):
            socket.emit("message", data)

    Clients connect to ``ws://host:port/ws/echo`` and send ``{"event": "message", "data": {...}}``.
    The path may hold variables, ``WebSocket("/chat/<room>")`` or ``<int:id>``, read by event
    functions from ``socket.path_params``.

    :param path: the path below ``/ws``; stripped and given a leading ``/``.
    :param add_to_handlers: register ``('/ws' + path, WebSocketHandler, {'websocket': self})``
        through `TornadoWrapper.add_handlers` (or the ``server``'s ``add_handlers``); the path is
        claimed as long as that spec stays in ``handlers``. Pass False to mount `handler_spec`
        yourself: nothing is registered and no path claimed.
    :param limits: this path's `~tornado_websockets.limits.Limits`; by default `TornadoWrapper.limits`.
    :param recover: keep the frames sent to the path and its rooms for this many seconds (at most
        ``recover_size`` per room), so that clients coming back after a drop get what they missed
        (see `tornado_websockets.recovery`).
    :param presence_events: send ``joined`` and ``left`` to a room's members when a user's first
        connection joins it and when their last one leaves (see `tornado_websockets.presence`).
    :param replace: replace the `WebSocket` that serves ``path`` already (its spec goes, its
        connections are closed with 1012); without it, a second `WebSocket` for a served path
        raises `~tornado_websockets.exceptions.PathAlreadyRegistered`.
    :param server: the `~tornado_websockets.server.Server` to register with; by default
        `TornadoWrapper`'s.
    """

    def __init__(
        self,
        path: str,
        add_to_handlers: bool = True,
        *,
        limits: Limits | None = None,
        recover: float | None = None,
        recover_size: int = 1000,
        presence_events: bool = False,
        replace: bool = False,
        server: Server | None = None,
    ) -> None:
        if not isinstance(path, str):
            raise TypeError(f"path should be a str such as '/chat', not {type(path).__qualname__}.")
        path = path.strip()
        self.path = path if path.startswith("/") else "/" + path
        self.route = Route.parse(self.path)
        self.limits = limits
        self.replay = None if recover is None else ReplayBuffer(recover, recover_size)
        self.presence_events = presence_events
        #: Event name -> how to call its function; dispatch never looks anything up by attribute.
        self.events: dict[str, EventFunction] = {}
        #: The live connections of this path, in this process.
        self.handlers: list[WebSocketHandler] = []
        #: The rooms of this path, in this process.
        self.rooms: Rooms[WebSocketHandler] = Rooms()
        #: What ``self`` is for event functions defined as methods of a class.
        self.context: Any = None
        #: Application state shared by every connection of this path.
        self.state = SimpleNamespace()
        self.modules: list[Module] = []
        self.guards: list[Callable[..., Any]] = []
        #: Counters of this path in this process (see `tornado_websockets.metrics`).
        self.metrics = PathMetrics()
        #: Events the server sends, declared with `emits`: name -> (payload type, description).
        self.outgoing: dict[str, tuple[Any, str | None]] = {}
        #: Listed in the AsyncAPI document and the explorer (False for the library's own paths).
        self.documented = True
        self._user_states: dict[Hashable, tuple[SimpleNamespace, int]] = {}
        #: The loop the last connection opened on (connections of a loop that has gone are pruned).
        self._last_loop: Any = None
        #: The runtime this path belongs to: its broker, limits, executor and loops.
        self.server: Server = server if server is not None else default_server()
        if not add_to_handlers:
            # The user mounts handler_spec() where they like: the claim, if any, is that
            # application's. Known to the server only for the backplane's deliveries.
            self.server.mount(self)
            return
        self.server.make_way(self, replace)
        # On the default server through TornadoWrapper.add_handlers, the seed's documented path:
        # a user or a test that wraps it sees every registration.
        self.server.add_route(self.handler_spec())

    @property
    def connections(self) -> list[WebSocketHandler]:
        """This path's open connections in this process (``handlers``, the seed's name, is the same
        list): read it, never change it."""
        return self.handlers

    def __repr__(self) -> str:
        return f"<WebSocket {self.path!r} events={sorted(self.events)!r} connections={len(self.handlers)}>"

    def handler_spec(self) -> tuple[str, type[WebSocketHandler], dict[str, Any]]:
        """The Tornado handler spec that serves this path, for mounting it by hand."""
        return ("/ws" + self.route.pattern, WebSocketHandler, {"websocket": self})

    # Binding ------------------------------------------------------------------------------------

    def add_event(
        self, name: str, callback: Callable[..., Any], *, blocking: bool = True, cancel_on_close: bool = False
    ) -> None:
        """Bind ``callback`` to the event ``name``: the plain call behind `on`."""
        if not callable(callback):
            raise NotCallableError(callback)
        if not isinstance(name, str) or not name:
            raise TypeError(f"An event name should be a non-empty str, not {name!r}.")
        if not isinstance(blocking, bool):
            raise TypeError(f"blocking should be True or False, not {blocking!r}.")
        if not isinstance(cancel_on_close, bool):
            raise TypeError(f"cancel_on_close should be True or False, not {cancel_on_close!r}.")
        if name in self.events:
            raise WebSocketEventAlreadyBinded(name, self.path)
        function = EventFunction.inspect(name, callback, blocking, cancel_on_close)
        if cancel_on_close and not function.is_async:
            raise TypeError(
                f'cancel_on_close=True needs an async def function ("{name}" is a plain def, which '
                "cannot be cancelled): make it async def, or check socket.closed.done() in it."
            )
        self.events[name] = function

    @overload
    def on(self, callback: F) -> F: ...

    @overload
    def on(
        self,
        callback: None = None,
        *,
        name: str | None = None,
        blocking: bool = True,
        cancel_on_close: bool = False,
    ) -> Callable[[F], F]: ...

    def on(
        self,
        callback: Any = _DECORATE,
        *,
        name: str | None = None,
        blocking: bool = True,
        cancel_on_close: bool = False,
    ) -> Any:
        """Decorator binding a function or method to the event named by its ``__name__``.

        ``@ws.on(name="chat.message")`` binds a name that is not a Python identifier. The function
        receives, by parameter name, ``socket`` (the connection) and ``data`` (a dict); a method of
        a class gets ``self`` from `context`. ``open`` and ``close`` run on connect and disconnect.
        What the function returns is the reply to a client request that carried an ``id``. The
        callback is returned unchanged.

        Where it runs: an ``async def`` function as an asyncio task of its own on the loop; a
        plain ``def`` in a worker thread (blocking calls and the Django ORM are fine there);
        a plain ``def`` bound with ``@ws.on(blocking=False)`` on the loop itself, which saves the
        hand-over to a thread but must never block (no I/O, no ORM, no sleep).

        A function goes on running when its client leaves (its emits to it are counted drops);
        ``@ws.on(cancel_on_close=True)`` cancels an ``async def`` function's task instead, as soon
        as the connection closes.
        """
        if callback is _DECORATE:  # @ws.on(name=..., blocking=...): a decorator to apply next

            def decorator(function: F) -> F:
                if not callable(function):
                    raise NotCallableError(function)
                self.add_event(
                    name or function.__name__, function, blocking=blocking, cancel_on_close=cancel_on_close
                )
                return function

            return decorator
        if not callable(callback):
            raise NotCallableError(callback)
        self.add_event(name or callback.__name__, callback, blocking=blocking)
        return callback

    def emits(self, event: str, payload: Any = None, description: str | None = None) -> None:
        """Declare an event the server sends on this path, for the AsyncAPI document.

        ``payload`` is the type of its data (a dataclass, a TypedDict, a msgspec Struct, a
        pydantic model); the declaration does not restrict what `emit` may send.
        """
        if not isinstance(event, str) or not event:
            raise TypeError(f"An event name should be a non-empty str, not {event!r}.")
        self.outgoing[event] = (payload, description)

    def guard(self, function: F) -> F:
        """Decorator registering a connect guard, run before the upgrade with ``socket``.

        The guard sees ``socket.request``, ``socket.path_params`` and, with Django,
        ``socket.user``. Returning False refuses the connection with 403; raising
        `~tornado_websockets.exceptions.ConnectionDenied` refuses it with its status. A plain
        ``def`` guard runs in a worker thread, an ``async def`` one on the loop.
        """
        if not callable(function):
            raise NotCallableError(function)
        self.guards.append(function)
        return function

    def bind(self, module: Module) -> None:
        """Attach a `~tornado_websockets.modules.Module`, which binds its own namespaced events."""
        self.modules.append(module)
        module.bind_to(self)

    # Emitting -----------------------------------------------------------------------------------

    def emit(
        self,
        event: str,
        data: dict[str, Any] | str | None = None,
        *,
        room: str | None = None,
        skip: Skip = None,
    ) -> None:
        """Send ``{"event": event, "data": data}`` to every client of this path, or of one ``room``.

        A ``str`` is sent as ``{"message": data}`` and ``None`` as ``{}``. The frame is encoded once,
        whatever the number of clients. ``skip`` (a connection or its id) leaves one client out,
        typically the sender. Safe from any thread of the server process; with a cross-process
        backplane, also from processes that run no server (a view, a worker).

        :raise TypeError: ``event`` is not a str, or ``data`` is not a dict, a str or None.
        :raise EmitHandlerError: no server loop runs in this process and no backplane is set, so
            nobody can be reached.
        """
        if room is not None and (not isinstance(room, str) or not room):
            raise TypeError(f"room should be a non-empty str, not {room!r}.")
        frame = protocol.encode_emit(event, data)
        skip_id = skip.id if isinstance(skip, WebSocketHandler) else skip
        broker = self.server.broker
        envelope = Envelope(self.path, frame, room, skip_id, broker.id)
        # Some asyncio loop may run here (asyncio.run in a script or a worker) with no server of
        # ours: its clients would be nobody, and a broker that was never started would keep the
        # envelope forever. Only the loop of a server (or of a connection) delivers locally.
        loop = self.home_loop()
        if loop is not None:
            try:
                loops.call_soon(loop, self.send, envelope)
                return
            except loops.LoopUnavailableError:
                pass  # stopped since we looked: as if there were none
        if broker.cross_process:
            broker.publish_sync(envelope)
            return
        raise EmitHandlerError(event, self.path)

    def home_loop(self) -> Any:
        """The running loop this path's emits are delivered and published from, if any.

        The loop the backplane receives on; else the loop of this path's live connections (a
        user's own application, a test's loop); else the server's loop. None when none runs.
        """
        loop = self.server.broker_loop
        if loop is not None:
            return loop
        for handler in self.handlers:
            if handler.loop.is_running():
                return handler.loop
        io_loop = self.server.io_loop
        loop = None if io_loop is None else loops.asyncio_loop_of(io_loop)
        return loop if loop is not None and loop.is_running() else None

    def connection_opened(self, handler: WebSocketHandler) -> None:
        """Count ``handler`` among the live connections (on its loop, from its ``open``)."""
        if handler.loop is not self._last_loop:
            # A new loop (a test's, a second server's): connections of a loop that has closed
            # without closing them can never be written to again.
            for stale in [h for h in self.handlers if h.loop.is_closed()]:
                self.connection_lost(stale)
            self._last_loop = handler.loop
        if self.server.websocket_for(self.path) is None:
            # Served by an application of the user's, unknown to the server (reset since): known
            # again, for the backplane's deliveries and shutdown, claiming nothing.
            self.server.mount(self)
        self.handlers.append(handler)

    def connection_lost(self, handler: WebSocketHandler) -> None:
        """Unlink a connection whose loop has gone without closing it (nothing can be written)."""
        with contextlib.suppress(ValueError):  # unlinked already
            self.handlers.remove(handler)
            for room in self.rooms.rooms_of(handler):
                self.rooms.leave(room, handler)
            if handler.user_id is not None:
                self.detach_user(handler.user_id)
            self.server.broker.presence_changed(handler, None, False)

    def to(self, room: str) -> RoomTarget:
        """The clients of ``room``: ``ws.to("lobby").emit("news", data)``."""
        return RoomTarget(self, room)

    # Fan-out: `tornado_websockets.fanout` -------------------------------------------------------

    @functools.cached_property
    def fanout(self) -> FanOut:
        """This path's delivery to its clients in this process (made on first use)."""
        return FanOut(self)

    def send(self, envelope: Envelope) -> None:
        """Deliver an envelope to this process's clients, then publish it to the others (on the loop)."""
        self.fanout.send(envelope)

    def deliver(self, envelope: Envelope) -> None:
        """Write the envelope's frame to this process's clients of its room (or of the path)."""
        self.fanout.deliver(envelope)

    def await_after_leave(self, room: str, handler: WebSocketHandler) -> None:
        """``handler`` left ``room`` with frames sent to it still being numbered: they come to it."""
        self.fanout.await_after_leave(room, handler)

    def broadcast(self, frame: bytes) -> None:
        """Write an encoded frame to every live connection of this process; call on the loop."""
        self.fanout.deliver(Envelope(self.path, frame))

    # Presence -----------------------------------------------------------------------------------

    def local_members(self, room: str | None = None) -> tuple[Member, ...]:
        """The members of the path (or of ``room``) in this process; call on the loop."""
        sockets = self.handlers if room is None else self.rooms.members(room)
        return presence.members(tuple(sockets), self.server.broker.id)

    async def presence(self, room: str | None = None) -> Presence:
        """Who is connected to the path (or to ``room``), in every process the broker reaches."""
        local = self.local_members(room)
        return Presence(await self.server.broker.presence(self.path, room, local))

    def presence_sync(self, room: str | None = None, timeout: float = 5.0) -> Presence:
        """`presence` from a Django view, a worker thread, or a process that runs no server.

        :raise RuntimeError: called on the server loop itself (``await ws.presence()`` there).
        """
        loop = self.home_loop()
        if loop is not None:
            if loops.running_loop() is loop:
                raise RuntimeError(
                    "presence_sync() would block the server loop: use await ws.presence() there."
                )
            return asyncio.run_coroutine_threadsafe(self.presence(room), loop).result(timeout)
        if self.server.broker.cross_process:
            return Presence(self.server.broker.presence_sync(self.path, room))
        raise RuntimeError(
            f"No server runs in this process and no backplane is set: nobody is on {self.path!r} here."
        )

    # State --------------------------------------------------------------------------------------

    def user_state(self, user_id: Hashable) -> SimpleNamespace:
        """The state shared by every connection of one user, while the user has one."""
        entry = self._user_states.get(user_id)
        if entry is None:
            raise KeyError(f"User {user_id!r} has no live connection on {self.path!r}.")
        return entry[0]

    def attach_user(self, user_id: Hashable) -> SimpleNamespace:
        """Count one more live connection for ``user_id``; returns the user's shared state."""
        state, count = self._user_states.get(user_id, (SimpleNamespace(), 0))
        self._user_states[user_id] = (state, count + 1)
        return state

    def detach_user(self, user_id: Hashable) -> None:
        """Count one connection less; the state goes with the user's last connection."""
        state, count = self._user_states[user_id]
        if count <= 1:
            del self._user_states[user_id]
        else:
            self._user_states[user_id] = (state, count - 1)

    @property
    def users(self) -> tuple[Hashable, ...]:
        """The ids of the users with a live connection in this process."""
        return tuple(self._user_states)


serve_paths_of(WebSocket)


class RoomTarget:
    """The clients of one room of a `WebSocket`, returned by `WebSocket.to`."""

    def __init__(self, websocket: WebSocket, room: str) -> None:
        self.websocket = websocket
        self.room = room

    def __repr__(self) -> str:
        return f"<RoomTarget {self.websocket.path!r} room={self.room!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RoomTarget) and (other.websocket, other.room) == (self.websocket, self.room)

    def __hash__(self) -> int:
        return hash((id(self.websocket), self.room))

    def emit(self, event: str, data: dict[str, Any] | str | None = None, *, skip: Skip = None) -> None:
        """Send to every client in the room; see `WebSocket.emit`."""
        self.websocket.emit(event, data, room=self.room, skip=skip)
