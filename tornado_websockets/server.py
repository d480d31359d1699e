"""Server: the runtime of one server, an object that owns what a running server needs.

Its registered paths, handler specs, Tornado application and HTTP server, the loop it listens on,
the worker threads of plain ``def`` functions, the backplane (`Broker`) and the event functions
running now. `~tornado_websockets.tornadowrapper.TornadoWrapper` is the seed's facade over a
default `Server`; its names and signatures stay. Nothing here assumes a first loop: each
connection belongs to the loop that serves it (see `tornado_websockets.loops`), so a test's fresh
loop, a second server after a first one, or a user's own `tornado.web.Application` see no
leftovers of another.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Executor
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

from tornado_websockets import delivery, loops
from tornado_websockets.broker import CONTROL_HANDLERS, Broker, Envelope, broker_from_url
from tornado_websockets.exceptions import PathAlreadyRegistered
from tornado_websockets.limits import Limits
from tornado_websockets.pathmetrics import snapshot_of
from tornado_websockets.processes import fork_workers, worker_count
from tornado_websockets.workers import DEFAULT_WORKERS, Done, WorkerPool

if TYPE_CHECKING:
    from tornado_websockets.websocket import WebSocket
    from tornado_websockets.websockethandler import WebSocketHandler

__all__ = [
    "BROKER_STOP_TIMEOUT",
    "CONNECT_WORKERS",
    "SHUTDOWN_GRACE",
    "Server",
    "default_server",
    "route_default_through",
    "set_default",
]

logger = logging.getLogger(__name__)

#: Route patterns that match every path: kept after every other handler so they never hide one.
_CATCH_ALL_PATTERNS = frozenset({".*", "/.*", "(.*)", "/(.*)", ".*$", "^.*$", "/.*$", "^/.*$"})

#: Seconds that shutdown() waits for connections to close and event functions to finish.
SHUTDOWN_GRACE = 5.0
#: Seconds that shutdown() waits for the backplane to flush and disconnect.
BROKER_STOP_TIMEOUT = 2.0
#: Worker threads of the connect pool: plain ``def`` guards and the Django session load run there,
#: so a new client is never queued behind slow event functions.
CONNECT_WORKERS = 4


def _is_catch_all(spec: Any) -> bool:
    pattern = spec[0] if isinstance(spec, (tuple, list)) and spec else getattr(spec, "regex", None)
    if pattern is not None and not isinstance(pattern, str):
        pattern = getattr(pattern, "pattern", None)
    return isinstance(pattern, str) and pattern in _CATCH_ALL_PATTERNS


def check_handlers(handlers: Any, argument: str) -> list[Any]:
    """``handlers`` as a list, or a TypeError that shows the expected shape."""
    if not isinstance(handlers, (list, tuple)):
        raise TypeError(
            f"{argument} should be a list or a tuple of handler specs such as "
            f"[('/path', HandlerClass)], not {type(handlers).__qualname__}."
        )
    return list(handlers)


class Server:
    """Everything one server needs at run time, in one object.

    ``Server()`` is independent of every other; `TornadoWrapper` uses a default one. Attributes:
    ``handlers`` (specs for the application), ``websockets`` (path -> `WebSocket`, computed
    from ``handlers``), ``broker``, ``limits``, ``executor`` (plain ``def`` functions),
    ``tornado_app``, ``tornado_server``, ``tornado_port``, ``io_loop`` (the loop `listen` or
    `loop` last ran on) and ``in_flight``.
    """

    def __init__(self, *, broker: Broker | str | None = None, limits: Limits | None = None) -> None:
        #: Runs plain ``def`` event functions and guards; a `WorkerPool` made on first use.
        self.executor: Executor | None = None
        self.max_workers = DEFAULT_WORKERS
        #: Runs what a connection needs before its upgrade (plain ``def`` guards, the Django
        #: session load): a small `WorkerPool` of its own, made on first use.
        self.connect_executor: Executor | None = None
        #: What control envelopes from other processes ask of this server, by kind (`on_control`).
        self.controls: dict[str, Callable[[bytes], None]] = {}
        self._clear(broker, limits)

    def _clear(self, broker: Broker | str | None, limits: Limits | None) -> None:
        """The state `reset` forgets: paths, application, listening, broker, limits, counts."""
        self._handlers: list[Any] = []
        #: WebSockets mounted by hand (``add_to_handlers=False``), held weakly: see `mount`.
        self._mounted: weakref.WeakValueDictionary[str, WebSocket] = weakref.WeakValueDictionary()
        self.broker: Broker = broker if isinstance(broker, Broker) else broker_from_url(broker)
        self.limits = limits or Limits()
        self.tornado_app: tornado.web.Application | None = None
        self.tornado_server: tornado.httpserver.HTTPServer | None = None
        self.tornado_port: int | None = None
        self.io_loop: tornado.ioloop.IOLoop | None = None
        #: Event functions running now, on a loop or in a worker (shutdown waits for them).
        self.in_flight = 0
        #: The same, per loop their connection belongs to: shutdown waits only for its own loop's.
        self._running_on: dict[asyncio.AbstractEventLoop, int] = {}
        #: Tasks nobody awaits (``close`` functions): the loop keeps only weak references.
        self._background: set[asyncio.Task[Any]] = set()
        #: The loop each broker was started on (a broker receives on one loop at a time).
        self._broker_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        where = "stopped" if self.tornado_port is None else f"port {self.tornado_port}"
        return f"<Server {where} paths={sorted(self.websockets)!r} broker={self.broker!r}>"

    # Registration -------------------------------------------------------------------------------

    @property
    def handlers(self) -> list[Any]:
        """The handler specs `start_app` builds the application from; the paths follow them.

        Assign it (``handlers = []``, as the original library's tests do) or change it in place:
        `websockets` is computed from it, so a path dropped from it is free again.
        """
        return self._handlers

    @handlers.setter
    def handlers(self, handlers: list[Any]) -> None:
        handlers = handlers if isinstance(handlers, list) else check_handlers(handlers, "handlers")
        _check_paths([], handlers)
        self._handlers = handlers

    @property
    def websockets(self) -> Mapping[str, WebSocket]:
        """Every `WebSocket` served here, by path: a read-only view computed from ``handlers``.

        A path is claimed exactly as long as a handler spec in ``handlers`` carries its
        `WebSocket`, however ``handlers`` is changed (``handlers = []`` frees every path). A
        `WebSocket` made with ``add_to_handlers=False`` and mounted by hand is listed too (it gets
        the backplane's deliveries) but claims nothing: a spec for its path takes precedence.
        """
        # items(), not dict(): a WebSocket collected meanwhile is skipped, not a KeyError.
        served: dict[str, WebSocket] = dict(self._mounted.items())
        claimed: set[str] = set()
        for spec in self.handlers:
            websocket = _spec_websocket(spec)
            if websocket is not None and websocket.path not in claimed:  # Tornado serves the first
                claimed.add(websocket.path)
                served[websocket.path] = websocket
        return MappingProxyType(served)

    @websockets.setter
    def websockets(self, websockets: Mapping[str, WebSocket]) -> None:
        """Serve exactly these: the specs of every other `WebSocket` go, the missing ones are added."""
        for path, websocket in websockets.items():
            if websocket.path != path:
                raise ValueError(f"{path!r} is served by {websocket!r}: key it by {websocket.path!r}.")
        kept = {id(websocket) for websocket in websockets.values()}
        handlers = []
        for spec in self.handlers:
            carried = _spec_websocket(spec)
            if carried is None or id(carried) in kept:
                handlers.append(spec)
        for path, mounted in list(self._mounted.items()):
            if id(mounted) not in kept:
                del self._mounted[path]
        self.handlers = handlers
        known = {id(_spec_websocket(spec)) for spec in handlers} | {id(w) for w in self._mounted.values()}
        self.add_handlers([w.handler_spec() for w in websockets.values() if id(w) not in known])

    def websocket_for(self, path: str) -> WebSocket | None:
        """The `WebSocket` that serves ``path`` here (see `websockets`), or None."""
        served = self.served(path)
        return served if served is not None else self._mounted.get(path)

    def add_handlers(self, handlers: Sequence[Any]) -> list[Any]:
        """Register handler specs; added to the running application at once if there is one.

        :raise PathAlreadyRegistered: a spec carries a `WebSocket` for a path that another one
            serves here already; nothing is added then.
        """
        new = check_handlers(handlers, "handlers")
        _check_paths(self.handlers, new)
        self.handlers.extend(new)
        if self.tornado_app is not None:
            # Application.add_handlers puts the new host rule before the initial one, so live
            # additions stay ahead of a catch-all fallback given to start_app.
            self.tornado_app.add_handlers(r".*", new)
        return self.handlers

    def add_route(self, spec: Any) -> None:
        """Add one `WebSocket`'s handler spec the way the seed documents it for its server.

        On the default server that is `TornadoWrapper.add_handlers` (installed with
        `route_default_through`), so that a user or a test wrapping it sees every registration;
        on any other server, `add_handlers`.
        """
        if self is _default and _default_registrar is not None:
            _default_registrar([spec])
        else:
            self.add_handlers([spec])

    def make_way(self, websocket: WebSocket, replace: bool = False) -> None:
        """Check that ``websocket`` may serve its path here, before its spec is added.

        With ``replace``, the `WebSocket` serving the path loses its specs and its connections
        (closed with 1012), so that the new one both receives the connections and gets the
        backplane's deliveries.

        :raise PathAlreadyRegistered: another `WebSocket` serves the path and ``replace`` is False.
        """
        existing = self.served(websocket.path)
        if existing is None or existing is websocket:
            return
        if not replace:
            raise PathAlreadyRegistered(websocket.path)
        # Tornado routes by the first matching spec: take the old one out.
        self.handlers = [spec for spec in self.handlers if _spec_websocket(spec) is not existing]
        for handler in list(existing.handlers):
            handler.close(1012, "Service restart")
        logger.info("%r replaces %r", websocket, existing)

    def register_websocket(self, websocket: WebSocket, replace: bool = False) -> None:
        """Serve ``websocket`` here: add its handler spec (see `make_way` for ``replace``)."""
        self.make_way(websocket, replace)
        if self.served(websocket.path) is not websocket:
            self.add_handlers([websocket.handler_spec()])

    def mount(self, websocket: WebSocket) -> None:
        """Note a `WebSocket` of this server that the user mounts in an application of their own.

        It claims no path (a spec for its path takes precedence and raises nothing), but it is
        listed in `websockets` and gets the backplane's deliveries while it exists.
        """
        if self._mounted.get(websocket.path) is not websocket:
            self._mounted[websocket.path] = websocket

    def served(self, path: str) -> WebSocket | None:
        """The `WebSocket` a handler spec of ``handlers`` serves ``path`` with (the path's claim)."""
        for spec in self.handlers:
            websocket = _spec_websocket(spec)
            if websocket is not None and websocket.path == path:
                return websocket
        return None

    def use_broker(self, broker: Broker | str | None) -> Broker:
        """Set the backplane: a `Broker`, or a URL (``redis://127.0.0.1:6379/0``, ``memory://``)."""
        self.broker = broker if isinstance(broker, Broker) else broker_from_url(broker)
        self._broker_loop = None
        return self.broker

    def deliver_envelope(self, envelope: Envelope) -> None:
        """Deliver an envelope published by another process to this process's clients.

        A control envelope (`Envelope.control`) goes to the handler registered for its kind with
        `on_control` instead of any `WebSocket`.
        """
        if envelope.control is not None:
            self._control(envelope)
            return
        websocket = self.websocket_for(envelope.path)
        if websocket is None:
            delivery.record_drop(delivery.UNKNOWN_PATH, envelope.path)
            return
        websocket.deliver(envelope)

    def on_control(self, kind: str, handler: Callable[[bytes], None]) -> None:
        """Handle the control envelopes of ``kind`` that other processes publish (on the loop).

        Registered explicitly by what needs it (the Django app registers ``sessions``' when
        ready), never as a side effect of importing a module.
        """
        self.controls[kind] = handler

    def _control(self, envelope: Envelope) -> None:
        kind = envelope.control or ""
        # broker.on_control (deprecated) registered process-wide, for every server.
        handler = self.controls.get(kind) or CONTROL_HANDLERS.get(kind)
        if handler is None:
            logger.warning("Ignoring a control message of unknown kind %r", kind)
            return
        handler(envelope.frame)

    def snapshot(self) -> dict[str, Any]:
        """Every metric of this server in this process as plain data (JSON-ready)."""
        return snapshot_of(self)

    def ensure_broker(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the broker on ``loop`` unless it receives on a running loop already.

        `listen` does it; a connection served by a user's own application does it on its loop.
        """
        current = self._broker_loop
        if current is loop or (current is not None and current.is_running()):
            return
        self._broker_loop = loop
        self.spawn(loop, self.broker.start(self.deliver_envelope))

    @property
    def broker_loop(self) -> asyncio.AbstractEventLoop | None:
        """The running loop the broker receives on, if any."""
        loop = self._broker_loop
        return loop if loop is not None and loop.is_running() else None

    # Application and listening -------------------------------------------------------------------

    def start_app(
        self, tornado_handlers: Sequence[Any] | None = None, tornado_settings: dict[str, Any] | None = None
    ) -> tornado.web.Application:
        """Build the application from the registered handlers plus ``tornado_handlers``.

        Catch-all patterns (``.*``, such as the Django fallback) go last whatever their order.
        """
        extra = check_handlers(tornado_handlers if tornado_handlers is not None else [], "tornado_handlers")
        if tornado_settings is None:
            tornado_settings = {}
        if not isinstance(tornado_settings, dict):
            raise TypeError(f"tornado_settings should be a dict, not {type(tornado_settings).__qualname__}.")
        every = [*extra, *self.handlers]
        routes = [h for h in every if not _is_catch_all(h)] + [h for h in every if _is_catch_all(h)]
        self.tornado_app = tornado.web.Application(routes, **tornado_settings)
        return self.tornado_app

    def listen(
        self, tornado_port: int, address: str = "", ssl_options: Any = None, **server_options: Any
    ) -> tornado.httpserver.HTTPServer:
        """Start serving the application on ``tornado_port`` (0 picks a free port).

        ``address`` is the interface (``""``: every interface; ``"127.0.0.1"``: this machine
        only). ``ssl_options`` (an `ssl.SSLContext` or a dict) serves HTTPS and ``wss://``.
        """
        if isinstance(tornado_port, bool) or not isinstance(tornado_port, int):
            raise TypeError(f"tornado_port should be an int, not {type(tornado_port).__qualname__}.")
        if self.tornado_app is None:
            raise TypeError("No Tornado application yet: call start_app() before listen().")
        sockets = tornado.netutil.bind_sockets(tornado_port, address)
        return self.add_sockets(sockets, ssl_options, **server_options)

    def add_sockets(
        self, sockets: list[socket.socket], ssl_options: Any = None, **server_options: Any
    ) -> tornado.httpserver.HTTPServer:
        """Start serving the application on sockets already bound (`listen` and `fork` bind them)."""
        if self.tornado_app is None:
            raise TypeError("No Tornado application yet: call start_app() first.")
        server = tornado.httpserver.HTTPServer(self.tornado_app, ssl_options=ssl_options, **server_options)
        server.add_sockets(sockets)
        self.tornado_server = server
        self.tornado_port = sockets[0].getsockname()[1]
        self.io_loop = tornado.ioloop.IOLoop.current()
        loop = self.io_loop.asyncio_loop  # type: ignore[attr-defined]
        if loop.is_running():
            self.ensure_broker(loop)
        else:  # listen() before the loop runs, as in the seed's start_app/listen/loop script
            self.io_loop.add_callback(self.ensure_broker, loop)
        scheme = "https" if ssl_options is not None else "http"
        for sock in sockets:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            logger.info("Listening on %s://%s:%d/", scheme, shown, port)
        return server

    def fork(self, tornado_port: int, address: str = "", processes: int = 2, **server_options: Any) -> int:
        """Bind the port, then fork ``processes`` processes that all serve it; returns this one's index.

        See `TornadoWrapper.fork`.
        """
        count = worker_count(processes)
        if count > 1 and not self.broker.cross_process:
            raise ValueError(
                "Several processes need a cross-process backplane: TornadoWrapper.use_broker('redis://...') "
                "or run(..., broker='redis://...'); with the in-process one, an emit would reach only the "
                "clients of the process that made it."
            )
        if self.tornado_app is None:
            raise TypeError("No Tornado application yet: call TornadoWrapper.start_app() before fork().")
        sockets = tornado.netutil.bind_sockets(tornado_port, address)
        index = 0
        if count > 1:
            index = fork_workers(count)
            # The broker was made before forking: with its id, the processes would skip each
            # other's emits as their own.
            self.broker.id = uuid.uuid4().hex
        self.add_sockets(sockets, **server_options)
        logger.info("Process %d of %d serving port %d", index + 1, count, self.tornado_port)
        return index

    # Running work -------------------------------------------------------------------------------

    def get_executor(self) -> Executor:
        """The executor of plain ``def`` functions: a `WorkerPool`, made on first use."""
        if self.executor is None:
            self.executor = WorkerPool(self.max_workers, thread_name_prefix="tornado-websockets")
        return self.executor

    def get_connect_executor(self) -> Executor:
        """The executor of connects (plain ``def`` guards, the session load), made on first use.

        Separate from `get_executor`'s, so that a client's upgrade never waits for event functions
        that keep every worker busy. Its threads wrap each call as the event pool's do (with
        Django: fresh database connections around it).
        """
        if self.connect_executor is None:
            events = self.get_executor()
            around = events.around if isinstance(events, WorkerPool) else None
            self.connect_executor = WorkerPool(
                CONNECT_WORKERS, thread_name_prefix="tornado-websockets-connect", around=around
            )
        return self.connect_executor

    def run_in_worker(self, fn: Callable[[], Any], done: Done) -> None:
        """Call ``fn()`` in a worker thread, then ``done(result, error)`` in that thread."""
        executor = self.get_executor()
        if isinstance(executor, WorkerPool):
            executor.run(fn, done)
            return

        def finished(future: Any) -> None:
            error = future.exception()
            done(None if error is not None else future.result(), error)

        # Any other Executor a user set: the same contract through its future.
        executor.submit(fn).add_done_callback(finished)

    def function_started(self, loop: asyncio.AbstractEventLoop) -> None:
        """An event function of a connection of ``loop`` starts (on that loop)."""
        self.in_flight += 1
        running = self._running_on
        running[loop] = running.get(loop, 0) + 1

    def function_ended(self, loop: asyncio.AbstractEventLoop) -> None:
        """It ended: on ``loop``, or in any thread once ``loop`` has stopped (a plain ``def`` that
        outlived its loop must not stay counted, nor keep a later shutdown waiting)."""
        running = self._running_on
        count = running.get(loop)
        if count is None:  # started before reset(), which forgot it
            return
        left = count - 1
        if left > 0:
            running[loop] = left
        else:
            running.pop(loop, None)
        if loops.running_loop() is loop or not self.call_in_loop(self._one_fewer):
            self.in_flight -= 1

    def _one_fewer(self) -> None:
        self.in_flight -= 1

    def running_on(self, loop: asyncio.AbstractEventLoop) -> int:
        """Event functions of connections of ``loop`` running now."""
        return self._running_on.get(loop, 0)

    def spawn(self, loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` as a task on ``loop`` (this thread's or handed over), kept until done."""

        def start() -> None:
            self.keep(loop.create_task(coroutine))

        try:
            loops.call_soon(loop, start)
        except loops.LoopUnavailableError:
            coroutine.close()
            raise

    def keep(self, awaitable: Any) -> None:
        """Hold a task or future nobody awaits until it is done (the loop keeps weak references)."""
        self._background.add(awaitable)
        awaitable.add_done_callback(self._background.discard)

    def call_in_loop(self, callback: Callable[..., Any], *args: Any) -> bool:
        """Run ``callback(*args)`` on the server's loop: now if this thread runs it, else handed over.

        Without a running server loop, a loop running in this thread serves (a test's or a user's
        own application). Returns False when neither exists, so nothing can run.
        """
        running = loops.running_loop()
        io_loop = self.io_loop
        loop = None if io_loop is None else io_loop.asyncio_loop  # type: ignore[attr-defined]
        if loop is None or not loop.is_running():
            loop = running
        if loop is None:
            return False
        try:
            loops.call_soon(loop, callback, *args)
        except loops.LoopUnavailableError:
            return False
        return True

    # Connections and shutdown -------------------------------------------------------------------

    def live_connections(self) -> list[WebSocketHandler]:
        """Every open connection of every registered `WebSocket`."""
        return [connection for websocket in self.websockets.values() for connection in websocket.handlers]

    async def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, close every WebSocket with 1001, stop the broker, and forget the server.

        Within ``grace`` seconds, each connection's frames already accepted are written, then its
        close frame, and the client's answer is awaited (a client on a slow link gets them all and
        its 1001, not an EOF); event functions of this loop's connections still running get the
        same ``grace``. After it, shutdown goes on without them (worker threads are daemon
        threads: a hung ``def`` cannot keep the process alive).
        The broker gets `BROKER_STOP_TIMEOUT` seconds more. Registered handlers are kept, so
        `start_app` can build the application again.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.tornado_server is not None:
            self.tornado_server.stop()
        connections = [c for c in self.live_connections() if c.loop is loop]
        # Each connection's stream: open until the frames it accepted and its close frame are
        # written and the client answered (or Tornado's close timeout aborted it).
        streams = [
            stream
            for stream in (getattr(c.ws_connection, "stream", None) for c in connections)
            if stream is not None
        ]
        for connection in connections:
            connection.close(1001, "Server shutting down")
        while self.running_on(loop) or any(not stream.closed() for stream in streams):
            if loop.time() > deadline:
                logger.warning(
                    "Shutting down with %d event functions running and %d connections open after %.1fs",
                    self.running_on(loop),
                    sum(not stream.closed() for stream in streams),
                    grace,
                )
                break
            await asyncio.sleep(0.01)
        if self.tornado_server is not None:
            try:
                await asyncio.wait_for(self.tornado_server.close_all_connections(), 1.0)
            except TimeoutError:
                logger.warning("Some HTTP connections were still open after shutting down")
        try:
            await asyncio.wait_for(self.broker.stop(), BROKER_STOP_TIMEOUT)
        except TimeoutError:
            logger.warning("The backplane %r did not stop within %.1fs", self.broker, BROKER_STOP_TIMEOUT)
        self._broker_loop = None
        self.tornado_server = None
        self.tornado_app = None
        self.tornado_port = None

    def reset(self) -> None:
        """Forget the application, server, port, loop, paths, handlers, broker and limits (for tests)."""
        if self.tornado_server is not None:
            self.tornado_server.stop()
        # The worker threads and the control handlers stay: threads are reused, not leaked.
        self._clear(None, None)


def _spec_websocket(spec: Any) -> WebSocket | None:
    """The `WebSocket` a handler spec carries in its ``websocket`` keyword, if it has one."""
    if isinstance(spec, (tuple, list)) and len(spec) >= 3 and isinstance(spec[2], dict):
        websocket = spec[2].get("websocket")
    else:
        kwargs = getattr(spec, "kwargs", None)
        websocket = kwargs.get("websocket") if isinstance(kwargs, dict) else None
    # Duck-typed: this module cannot import websocket.py, which imports it (through the facade).
    return cast("WebSocket", websocket) if isinstance(getattr(websocket, "path", None), str) else None


def _check_paths(handlers: Sequence[Any], new: Sequence[Any]) -> None:
    """Raise `PathAlreadyRegistered` if a spec of ``new`` carries a `WebSocket` for a path that
    another `WebSocket` is served on by ``handlers`` or by an earlier spec of ``new``."""
    served: dict[str, Any] = {}
    for spec in handlers:
        websocket = _spec_websocket(spec)
        if websocket is not None:
            served.setdefault(websocket.path, websocket)
    for spec in new:
        websocket = _spec_websocket(spec)
        if websocket is None:
            continue
        if served.setdefault(websocket.path, websocket) is not websocket:
            raise PathAlreadyRegistered(websocket.path)


_default: Server | None = None
_default_registrar: Callable[[Sequence[Any]], object] | None = None


def route_default_through(registrar: Callable[[Sequence[Any]], object]) -> None:
    """How the default server adds a `WebSocket`'s spec (`Server.add_route`): the facade installs
    its own ``add_handlers`` here, which this layer cannot import."""
    global _default_registrar
    _default_registrar = registrar


def default_server() -> Server:
    """The process's default `Server`: the one `TornadoWrapper` fronts and a `WebSocket` made
    without ``server=`` registers with. Made on first use."""
    global _default
    if _default is None:
        _default = Server()
    return _default


def set_default(server: Server) -> Server:
    """Make ``server`` the process's default (for example a fresh one per test); returns it.

    `WebSocket` objects made earlier keep the server they were made for.
    """
    global _default
    _default = server
    return server
