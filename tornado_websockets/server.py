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
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

from tornado_websockets import delivery, loops
from tornado_websockets.backplanes import broker_from_url
from tornado_websockets.broker import CONTROL_HANDLERS, Broker, Envelope
from tornado_websockets.limits import Limits
from tornado_websockets.pathmetrics import snapshot_of
from tornado_websockets.processes import fork_workers, worker_count
from tornado_websockets.routing import Routes, check_handlers, is_catch_all
from tornado_websockets.workers import DEFAULT_WORKERS, Done, WorkerPool

if TYPE_CHECKING:
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

#: Seconds that shutdown() waits for connections to close and event functions to finish.
SHUTDOWN_GRACE = 5.0
#: Seconds that shutdown() waits for the backplane to flush and disconnect.
BROKER_STOP_TIMEOUT = 2.0
#: Worker threads of the connect pool: plain ``def`` guards and the Django session load run there,
#: so a new client is never queued behind slow event functions.
CONNECT_WORKERS = 4


class Server(Routes):
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
        self._clear_routes()
        self.broker: Broker = broker if isinstance(broker, Broker) else broker_from_url(broker)
        self.limits = limits or Limits()
        self.tornado_app: tornado.web.Application | None = None
        self.tornado_server: tornado.httpserver.HTTPServer | None = None
        self.tornado_port: int | None = None
        self.io_loop: tornado.ioloop.IOLoop | None = None
        #: The event loop `add_sockets` serves on in its thread: "asyncio" or "uvloop" (`use_loop`).
        self.loop_name = "asyncio"
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

    def _registrar(self) -> Callable[[Sequence[Any]], object] | None:
        return _default_registrar if self is _default else None

    def use_loop(self, name: str) -> str:
        """Serve on the event loop ``name`` ("asyncio", the default, or "uvloop"); call before `listen`.

        :raise ValueError: an unknown name. :raise ImportError: uvloop is not installed.
        """
        if not loops.loop_available(name):
            raise ImportError(loops.UVLOOP_MISSING, name=name)
        self.loop_name = name
        return name

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
        self.spawn(loop, self.broker.start(self))

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
        routes = [h for h in every if not is_catch_all(h)] + [h for h in every if is_catch_all(h)]
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
        loops.use_loop(self.loop_name)  # before Tornado asks for this thread's loop (accepting does)
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

    def function_ended(self, loop: asyncio.AbstractEventLoop, on_loop: bool = False) -> None:
        """It ended: on ``loop`` (``on_loop``: the caller knows it runs there), or in any thread
        once ``loop`` has stopped (a plain ``def`` that outlived its loop must not stay counted,
        nor keep a later shutdown waiting)."""
        running = self._running_on
        count = running.get(loop)
        if count is None:  # started before reset(), which forgot it
            return
        left = count - 1
        if left > 0:
            running[loop] = left
        else:
            running.pop(loop, None)
        if on_loop or loops.running_loop() is loop or not self.call_in_loop(self._one_fewer):
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
