"""TornadoWrapper: the process-wide holder of the Tornado application, its server and its loop."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

from tornado_websockets import delivery
from tornado_websockets.broker import Broker, Envelope, broker_from_url
from tornado_websockets.limits import Limits
from tornado_websockets.processes import fork_workers, worker_count

if TYPE_CHECKING:
    from tornado_websockets.websocket import WebSocket

__all__ = ["TornadoWrapper"]

logger = logging.getLogger(__name__)

#: Route patterns that match every path: kept after every other handler so they never hide one.
_CATCH_ALL_PATTERNS = frozenset({".*", "/.*", "(.*)", "/(.*)", ".*$", "^.*$", "/.*$", "^/.*$"})

#: Seconds that shutdown() waits for connections to finish closing.
SHUTDOWN_GRACE = 5.0


def _is_catch_all(spec: Any) -> bool:
    pattern = spec[0] if isinstance(spec, (tuple, list)) and spec else getattr(spec, "regex", None)
    if pattern is not None and not isinstance(pattern, str):
        pattern = getattr(pattern, "pattern", None)
    return isinstance(pattern, str) and pattern in _CATCH_ALL_PATTERNS


def _check_handlers(handlers: Any, argument: str) -> list[Any]:
    if not isinstance(handlers, (list, tuple)):
        raise TypeError(
            f"{argument} should be a list or a tuple of handler specs such as "
            f"[('/path', HandlerClass)], not {type(handlers).__qualname__}."
        )
    return list(handlers)


class TornadoWrapper:
    """The Tornado application, server and loop of this process, shared by every `WebSocket`.

    Every method is a class method: there is one wrapper per process. A typical script::

        TornadoWrapper.start_app()
        TornadoWrapper.listen(8000)
        TornadoWrapper.loop()

    or, in one call, ``TornadoWrapper.run(8000)``.
    """

    tornado_app: ClassVar[tornado.web.Application | None] = None
    tornado_server: ClassVar[tornado.httpserver.HTTPServer | None] = None
    tornado_port: ClassVar[int | None] = None
    handlers: ClassVar[list[Any]] = []
    #: The loop the server runs on; emits from other threads are handed to it.
    io_loop: ClassVar[tornado.ioloop.IOLoop | None] = None
    #: Runs plain ``def`` event functions off the loop; created on first use.
    executor: ClassVar[Executor | None] = None
    #: Worker threads of the default executor.
    max_workers: ClassVar[int] = 16
    #: Every `WebSocket` of the process by path, whether or not it was added to the handlers.
    websockets: ClassVar[dict[str, WebSocket]] = {}
    #: The backplane: in-process by default, Redis with ``use_broker("redis://...")``.
    broker: ClassVar[Broker] = Broker()
    #: Event functions running now, on the loop or in the executor (shutdown waits for them).
    in_flight: ClassVar[int] = 0
    #: Limits of every connection whose `WebSocket` sets none of its own.
    limits: ClassVar[Limits] = Limits()
    _shutdown_task: ClassVar[asyncio.Task[None] | None] = None

    @classmethod
    def add_handlers(cls, handlers: Sequence[Any]) -> list[Any]:
        """Register handler specs; added to the running application at once if there is one."""
        new = _check_handlers(handlers, "handlers")
        cls.handlers.extend(new)
        if cls.tornado_app is not None:
            # Application.add_handlers puts the new host rule before the initial one, so live
            # additions stay ahead of a catch-all fallback given to start_app.
            cls.tornado_app.add_handlers(r".*", new)
        return cls.handlers

    @classmethod
    def register_websocket(cls, websocket: WebSocket) -> None:
        """Make ``websocket`` reachable by path for emits arriving through the broker."""
        if websocket.path in cls.websockets:
            logger.warning("A second WebSocket for %r replaces the first one", websocket.path)
        cls.websockets[websocket.path] = websocket

    @classmethod
    def use_broker(cls, broker: Broker | str | None) -> Broker:
        """Set the backplane: a `Broker`, or a URL (``redis://127.0.0.1:6379/0``, ``memory://``).

        Call it before `listen`; the broker starts receiving when the server starts listening.
        """
        cls.broker = broker if isinstance(broker, Broker) else broker_from_url(broker)
        return cls.broker

    @classmethod
    def deliver_envelope(cls, envelope: Envelope) -> None:
        """Deliver an envelope published by another process to this process's clients."""
        websocket = cls.websockets.get(envelope.path)
        if websocket is None:
            delivery.record_drop(delivery.UNKNOWN_PATH, envelope.path)
            return
        websocket.deliver(envelope)

    @classmethod
    def start_app(
        cls,
        tornado_handlers: Sequence[Any] | None = None,
        tornado_settings: dict[str, Any] | None = None,
    ) -> tornado.web.Application:
        """Build the application from the registered handlers plus ``tornado_handlers``.

        Catch-all patterns (``.*``, such as the Django fallback) go last whatever their order.
        """
        extra = _check_handlers(tornado_handlers if tornado_handlers is not None else [], "tornado_handlers")
        if tornado_settings is None:
            tornado_settings = {}
        if not isinstance(tornado_settings, dict):
            raise TypeError(f"tornado_settings should be a dict, not {type(tornado_settings).__qualname__}.")
        every = [*extra, *cls.handlers]
        routes = [h for h in every if not _is_catch_all(h)] + [h for h in every if _is_catch_all(h)]
        cls.tornado_app = tornado.web.Application(routes, **tornado_settings)
        return cls.tornado_app

    @classmethod
    def listen(
        cls,
        tornado_port: int,
        address: str = "",
        ssl_options: Any = None,
        **server_options: Any,
    ) -> tornado.httpserver.HTTPServer:
        """Start serving the application on ``tornado_port`` (0 picks a free port).

        ``ssl_options`` (an `ssl.SSLContext` or a dict) serves HTTPS and ``wss://``.
        """
        if isinstance(tornado_port, bool) or not isinstance(tornado_port, int):
            raise TypeError(f"tornado_port should be an int, not {type(tornado_port).__qualname__}.")
        if cls.tornado_app is None:
            raise TypeError("No Tornado application yet: call TornadoWrapper.start_app() before listen().")
        sockets = tornado.netutil.bind_sockets(tornado_port, address)
        return cls.add_sockets(sockets, ssl_options, **server_options)

    @classmethod
    def add_sockets(
        cls, sockets: list[socket.socket], ssl_options: Any = None, **server_options: Any
    ) -> tornado.httpserver.HTTPServer:
        """Start serving the application on sockets already bound (`listen` and `fork` bind them)."""
        if cls.tornado_app is None:
            raise TypeError("No Tornado application yet: call TornadoWrapper.start_app() first.")
        server = tornado.httpserver.HTTPServer(cls.tornado_app, ssl_options=ssl_options, **server_options)
        server.add_sockets(sockets)
        cls.tornado_server = server
        cls.tornado_port = sockets[0].getsockname()[1]
        cls.io_loop = tornado.ioloop.IOLoop.current()
        cls.io_loop.add_callback(cls.broker.start, cls.deliver_envelope)
        logger.info("Listening on %s:%d", sockets[0].getsockname()[0], cls.tornado_port)
        return server

    @classmethod
    def fork(cls, tornado_port: int, address: str = "", processes: int = 2, **server_options: Any) -> int:
        """Bind the port, then fork ``processes`` processes that all serve it; returns this one's index.

        Call after `start_app` and before the loop exists; 0 processes is one per CPU. Needs a
        cross-process broker, or an emit would reach only the clients of the process that made
        it. The parent process never returns: it restarts a process that dies, passes SIGINT and
        SIGTERM on to the others, and exits with them (see `tornado_websockets.processes`).
        """
        count = worker_count(processes)
        if count > 1 and not cls.broker.cross_process:
            raise ValueError(
                "Several processes need a cross-process backplane: TornadoWrapper.use_broker('redis://...') "
                "or run(..., broker='redis://...'); with the in-process one, an emit would reach only the "
                "clients of the process that made it."
            )
        if cls.tornado_app is None:
            raise TypeError("No Tornado application yet: call TornadoWrapper.start_app() before fork().")
        sockets = tornado.netutil.bind_sockets(tornado_port, address)
        index = 0
        if count > 1:
            index = fork_workers(count)
            # The broker was made before forking: with its id, the processes would skip each
            # other's emits as their own.
            cls.broker.id = uuid.uuid4().hex
        cls.add_sockets(sockets, **server_options)
        logger.info("Process %d of %d serving port %d", index + 1, count, cls.tornado_port)
        return index

    @classmethod
    def loop(cls) -> None:
        """Run the IOLoop until `stop` is called."""
        cls.io_loop = tornado.ioloop.IOLoop.current()
        cls.io_loop.start()

    @classmethod
    def stop(cls) -> None:
        """Stop the loop started by `loop`; safe to call from any thread or a signal handler."""
        io_loop = cls.io_loop
        if io_loop is not None:
            io_loop.add_callback(io_loop.stop)

    @classmethod
    def run(
        cls,
        tornado_port: int = 8000,
        tornado_handlers: Sequence[Any] | None = None,
        tornado_settings: dict[str, Any] | None = None,
        address: str = "",
        ssl_options: Any = None,
        *,
        processes: int = 1,
        broker: Broker | str | None = None,
    ) -> None:
        """Quick starter for scripts: build the app, listen, and loop until SIGINT or SIGTERM.

        On either signal the server stops accepting, closes every WebSocket with code 1001
        (going away) and returns once they are closed or `SHUTDOWN_GRACE` seconds have passed.

        ``broker`` sets the backplane, as `use_broker` does. ``processes`` forks that many server
        processes sharing the port (0: one per CPU); see `fork`.

        ``address`` is the interface to listen on: ``""`` (the default) is every interface, so
        other machines can connect; ``"127.0.0.1"`` is this machine only. Where it listens is
        logged (on the console, unless the script configured logging itself).
        """
        package = logging.getLogger("tornado_websockets")
        if not package.handlers and not logging.getLogger().handlers:  # a script without logging set up
            console = logging.StreamHandler()
            console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
            package.addHandler(console)
            package.setLevel(logging.INFO)
        if broker is not None:
            cls.use_broker(broker)
        cls.start_app(tornado_handlers, tornado_settings)
        if not address:
            logger.info("Listening on every interface: pass address='127.0.0.1' for this machine only")
        if processes == 1:
            cls.listen(tornado_port, address, ssl_options=ssl_options)
        else:
            cls.fork(tornado_port, address, processes, ssl_options=ssl_options)
        cls.install_signal_handlers()
        cls.loop()

    @classmethod
    def install_signal_handlers(cls) -> None:
        """Make SIGINT and SIGTERM shut the server down gracefully (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        asyncio_loop = tornado.ioloop.IOLoop.current().asyncio_loop  # type: ignore[attr-defined]

        def on_signal(signum: int) -> None:
            logger.info("Received %s, shutting down", signal.Signals(signum).name)
            cls._shutdown_task = asyncio_loop.create_task(cls._shutdown_then_stop())

        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio_loop.add_signal_handler(signum, on_signal, signum)

    @classmethod
    async def _shutdown_then_stop(cls) -> None:
        await cls.shutdown()
        cls.stop()

    @classmethod
    def live_connections(cls) -> list[Any]:
        """Every open connection of every registered `WebSocket` of this process."""
        return [connection for websocket in cls.websockets.values() for connection in websocket.handlers]

    @classmethod
    async def shutdown(cls, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, close every WebSocket with 1001, and forget the server and app.

        Event functions still running get ``grace`` seconds to finish. Registered handlers are
        kept, so `start_app` can build the application again.
        """
        if cls.tornado_server is not None:
            cls.tornado_server.stop()
        connections = cls.live_connections()
        for connection in connections:
            connection.close(1001, "Server shutting down")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while cls.in_flight or any(c.ws_connection is not None for c in connections):
            if loop.time() > deadline:
                logger.warning(
                    "Shutting down with %d event functions running and %d connections open after %.1fs",
                    cls.in_flight,
                    sum(c.ws_connection is not None for c in connections),
                    grace,
                )
                break
            await asyncio.sleep(0.01)
        if cls.tornado_server is not None:
            await cls.tornado_server.close_all_connections()
        await cls.broker.stop()
        cls.tornado_server = None
        cls.tornado_app = None
        cls.tornado_port = None

    @classmethod
    def reset(cls) -> None:
        """Forget everything: application, server, port, loop and registered handlers (for tests)."""
        if cls.tornado_server is not None:
            cls.tornado_server.stop()
        cls.tornado_app = None
        cls.tornado_server = None
        cls.tornado_port = None
        cls.handlers = []
        cls.io_loop = None
        cls.websockets = {}
        cls.broker = Broker()
        cls.limits = Limits()
        cls.in_flight = 0

    @classmethod
    def get_executor(cls) -> Executor:
        """The executor that runs plain ``def`` event functions, created on first use."""
        if cls.executor is None:
            cls.executor = ThreadPoolExecutor(cls.max_workers, thread_name_prefix="tornado-websockets")
        return cls.executor

    @classmethod
    def call_in_loop(cls, callback: Callable[..., Any], *args: Any) -> bool:
        """Run ``callback(*args)`` on the server loop: now if this thread runs it, else handed over.

        Returns False when no server loop is running in this process, so nothing can be delivered.
        """
        io_loop = cls.io_loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and (io_loop is None or io_loop.asyncio_loop is running):  # type: ignore[attr-defined]
            callback(*args)
            return True
        if io_loop is None or not io_loop.asyncio_loop.is_running():  # type: ignore[attr-defined]
            return False
        io_loop.add_callback(callback, *args)
        return True
