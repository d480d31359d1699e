"""TornadoWrapper: the seed's facade over the process's default `~tornado_websockets.server.Server`."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import tornado.httpserver
import tornado.ioloop
import tornado.web

from tornado_websockets import loops
from tornado_websockets.broker import Broker, Envelope
from tornado_websockets.limits import Limits
from tornado_websockets.server import (
    BROKER_STOP_TIMEOUT,
    SHUTDOWN_GRACE,
    Server,
    default_server,
    route_default_through,
    set_default,
)

if TYPE_CHECKING:
    import socket

    from tornado_websockets.websocket import WebSocket

__all__ = ["BROKER_STOP_TIMEOUT", "SHUTDOWN_GRACE", "TornadoWrapper"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _Forward(Generic[T]):
    """A class-level attribute of `TornadoWrapper` that reads and writes the default server's."""

    def __init__(self, name: str, doc: str, deprecated_as: str | None = None) -> None:
        self.name, self.__doc__, self.deprecated_as = name, doc, deprecated_as

    def _warn(self) -> None:
        if self.deprecated_as is not None:
            warnings.warn(
                f"TornadoWrapper.{self.deprecated_as} is deprecated: use TornadoWrapper.{self.name}.",
                DeprecationWarning,
                3,
            )

    def __get__(self, owner: object, owner_type: object = None) -> T:
        self._warn()
        value: T = getattr(default_server(), self.name)
        return value

    def __set__(self, owner: object, value: T) -> None:
        self._warn()
        setattr(default_server(), self.name, value)


class _Runtime:
    """``TornadoWrapper.runtime``: the process's default `Server` (`server.default_server`)."""

    def __get__(self, owner: object, owner_type: object = None) -> Server:
        return default_server()

    def __set__(self, owner: object, server: Server) -> None:
        set_default(server)


class _Facade(type):
    """Class attributes of `TornadoWrapper` that live in its default `Server`."""

    runtime = _Runtime()
    tornado_app = _Forward[tornado.web.Application | None]("tornado_app", "The Tornado application.")
    tornado_server = _Forward[tornado.httpserver.HTTPServer | None]("tornado_server", "The HTTP server.")
    tornado_port = _Forward[int | None]("tornado_port", "The port listened on.")
    handlers = _Forward[list[Any]]("handlers", "Registered handler specs; the paths follow them.")
    io_loop = _Forward[tornado.ioloop.IOLoop | None]("io_loop", "The loop listen() or loop() ran on.")
    executor = _Forward[Executor | None]("executor", "Runs plain def event functions.")
    max_workers = _Forward[int]("max_workers", "Threads of the default executor.")
    websockets = _Forward[Mapping[str, "WebSocket"]]("websockets", "Every WebSocket by path, from handlers.")
    broker = _Forward[Broker]("broker", "The backplane.")
    in_flight = _Forward[int]("in_flight", "Event functions running now.")
    limits = _Forward[Limits]("limits", "Limits of paths that set none.")
    app = _Forward[tornado.web.Application | None](
        "tornado_app", "Deprecated alias of ``tornado_app``.", "app"
    )
    server = _Forward[tornado.httpserver.HTTPServer | None](
        "tornado_server", "Deprecated alias of ``tornado_server``.", "server"
    )


class TornadoWrapper(metaclass=_Facade):
    """The Tornado application, server and loop of this process, shared by every `WebSocket`.

    Every method is a class method over `runtime`, the process's default
    `~tornado_websockets.server.Server`. A typical script::

        TornadoWrapper.start_app()
        TornadoWrapper.listen(8000)
        TornadoWrapper.loop()

    or, in one call, ``TornadoWrapper.run(8000)``. A user's own ``tornado.web.Application``
    mounting ``ws.handler_spec()`` works on any loop, with or without these methods.

    Attributes (read and written through the default server): ``tornado_app``,
    ``tornado_server``, ``tornado_port``, ``handlers``, ``io_loop``, ``executor``,
    ``max_workers``, ``websockets``, ``broker``, ``in_flight``, ``limits``.
    """

    _shutdown_task: asyncio.Task[None] | None = None

    @classmethod
    def add_handlers(cls, handlers: Sequence[Any]) -> list[Any]:
        """Register handler specs; added to the running application at once if there is one.

        ``WebSocket(path)`` registers its spec here, ``('/ws' + path, WebSocketHandler,
        {'websocket': ws})``, as in the original library.

        :raise PathAlreadyRegistered: a spec carries a `WebSocket` for a path another one serves.
        """
        return cls.runtime.add_handlers(handlers)

    @classmethod
    def add_handler(cls, handler: Any) -> list[Any]:
        """Deprecated (0.2): ``add_handlers([handler])``."""
        warnings.warn(
            "TornadoWrapper.add_handler(handler) is deprecated: use TornadoWrapper.add_handlers([handler]).",
            DeprecationWarning,
            2,
        )
        return cls.runtime.add_handlers([handler])

    @classmethod
    def register_websocket(cls, websocket: WebSocket, replace: bool = False) -> None:
        """Serve ``websocket``: add its handler spec through `add_handlers` (see `Server.make_way`)."""
        cls.runtime.make_way(websocket, replace)
        if cls.runtime.served(websocket.path) is not websocket:
            cls.add_handlers([websocket.handler_spec()])

    @classmethod
    def use_broker(cls, broker: Broker | str | None) -> Broker:
        """Set the backplane: a `Broker`, or a URL (``redis://127.0.0.1:6379/0``, ``memory://``).

        Call it before `listen`; the broker starts receiving when the server starts listening.
        """
        return cls.runtime.use_broker(broker)

    @classmethod
    def use_loop(cls, name: str) -> str:
        """Serve on the event loop ``name``: ``"asyncio"`` (the default) or ``"uvloop"`` (the ``uvloop``
        extra). Call it before `listen` or `fork`: the loop is set up as the server starts listening.

        :raise ValueError: an unknown name. :raise ImportError: uvloop is not installed.

        .. versionadded:: 1.0
        """
        return cls.runtime.use_loop(name)

    @classmethod
    def deliver_envelope(cls, envelope: Envelope) -> None:
        """Deliver an envelope published by another process to this process's clients."""
        cls.runtime.deliver_envelope(envelope)

    @classmethod
    def start_app(
        cls,
        tornado_handlers: Sequence[Any] | None = None,
        tornado_settings: dict[str, Any] | None = None,
    ) -> tornado.web.Application:
        """Build the application from the registered handlers plus ``tornado_handlers``.

        Catch-all patterns (``.*``, such as the Django fallback) go last whatever their order.
        """
        return cls.runtime.start_app(tornado_handlers, tornado_settings)

    @classmethod
    def listen(
        cls,
        tornado_port: int,
        address: str = "",
        ssl_options: Any = None,
        **server_options: Any,
    ) -> tornado.httpserver.HTTPServer:
        """Start serving the application on ``tornado_port`` (0 picks a free port).

        ``address`` is the interface to listen on: ``""`` (the default) is every interface,
        ``"127.0.0.1"`` this machine only. Where it listens is logged at INFO.
        ``ssl_options`` (an `ssl.SSLContext` or a dict) serves HTTPS and ``wss://``.
        """
        return cls.runtime.listen(tornado_port, address, ssl_options, **server_options)

    @classmethod
    def add_sockets(
        cls, sockets: list[socket.socket], ssl_options: Any = None, **server_options: Any
    ) -> tornado.httpserver.HTTPServer:
        """Start serving the application on sockets already bound (`listen` and `fork` bind them)."""
        return cls.runtime.add_sockets(sockets, ssl_options, **server_options)

    @classmethod
    def fork(cls, tornado_port: int, address: str = "", processes: int = 2, **server_options: Any) -> int:
        """Bind the port, then fork ``processes`` processes that all serve it; returns this one's index.

        Call after `start_app` and before the loop exists; 0 processes is one per CPU. Needs a
        cross-process broker, or an emit would reach only the clients of the process that made
        it. The parent process never returns: it restarts a process that dies, passes SIGINT and
        SIGTERM on to the others, and exits with them (see `tornado_websockets.processes`).
        """
        return cls.runtime.fork(tornado_port, address, processes, **server_options)

    @classmethod
    def loop(cls) -> None:
        """Run the IOLoop until `stop` is called.

        Calls other threads handed to the loop in its last iteration never run: they are counted
        (frames as drops) as the loop stops.
        """
        io_loop = tornado.ioloop.IOLoop.current()
        cls.io_loop = io_loop
        io_loop.start()
        loops.inbox(io_loop.asyncio_loop).abandon()  # type: ignore[attr-defined]

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
        loop: str = "asyncio",
    ) -> None:
        """Quick starter for scripts: build the app, listen, and loop until SIGINT or SIGTERM.

        On either signal the server stops accepting, closes every WebSocket with code 1001
        (going away) and returns once they are closed or `SHUTDOWN_GRACE` seconds have passed.

        ``broker`` sets the backplane, as `use_broker` does. ``processes`` forks that many server
        processes sharing the port (0: one per CPU); see `fork`. ``loop`` is the event loop to serve
        on, ``"asyncio"`` or ``"uvloop"`` (see `use_loop`).

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
        cls.use_loop(loop)  # first: a missing uvloop is reported before anything is bound
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
            name = signal.Signals(signum).name
            task = cls._shutdown_task
            if task is not None and not task.done():
                # A second Ctrl-C: the user does not want to wait for the grace.
                logger.warning("Received %s again: stopping now, without waiting for the grace", name)
                task.cancel()
                cls.stop()
                return
            logger.info("Received %s, shutting down (again to stop at once)", name)
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
        return cls.runtime.live_connections()

    @classmethod
    async def shutdown(cls, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, close every WebSocket with 1001, stop the broker, and forget the server.

        Event functions still running get ``grace`` seconds; after that shutdown goes on without
        them, so the process exits within the grace plus a couple of seconds whatever they do.
        Registered handlers are kept, so `start_app` can build the application again.
        """
        await cls.runtime.shutdown(grace)

    @classmethod
    def reset(cls) -> None:
        """Forget everything: application, server, port, loop, handlers and paths, broker, limits.

        For tests: call it before each one (see the Testing page). Assigning ``handlers = []``,
        as the original library's tests do, frees every path too.
        """
        cls.runtime.reset()

    @classmethod
    def get_executor(cls) -> Executor:
        """The executor that runs plain ``def`` event functions (a `WorkerPool`), made on first use."""
        return cls.runtime.get_executor()

    @classmethod
    def call_in_loop(cls, callback: Callable[..., Any], *args: Any) -> bool:
        """Run ``callback(*args)`` on the server loop: now if this thread runs it, else handed over.

        Returns False when no loop can run it (no server loop running, none in this thread).
        """
        return cls.runtime.call_in_loop(callback, *args)


# WebSocket(path) on the default server registers through TornadoWrapper.add_handlers, as the seed
# documents (looked up at each call, so that a wrapper installed later sees every registration).
route_default_through(lambda specs: TornadoWrapper.add_handlers(specs))
