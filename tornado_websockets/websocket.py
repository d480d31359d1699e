"""WebSocket: a path, the event functions bound on it, and emit to every client of that path."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from tornado_websockets import protocol
from tornado_websockets.events import EventFunction
from tornado_websockets.exceptions import EmitHandlerError, NotCallableError, WebSocketEventAlreadyBinded
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websockethandler import WebSocketHandler

if TYPE_CHECKING:
    from tornado_websockets.modules import Module

__all__ = ["WebSocket"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class WebSocket:
    """A WebSocket path and the events its clients may send.

    ::

        ws = WebSocket("/echo")

        @ws.on
        def message(socket, data):
            socket.emit("message", data)

    Clients connect to ``ws://host:port/ws/echo`` and send ``{"event": "message", "data": {...}}``.

    :param path: the path below ``/ws``; stripped and given a leading ``/``.
    :param add_to_handlers: register ``('/ws' + path, WebSocketHandler, {'websocket': self})`` with
        `TornadoWrapper`; pass False to mount the handler yourself.
    """

    def __init__(self, path: str, add_to_handlers: bool = True) -> None:
        if not isinstance(path, str):
            raise TypeError(f"path should be a str such as '/chat', not {type(path).__qualname__}.")
        path = path.strip()
        self.path = path if path.startswith("/") else "/" + path
        #: Event name -> how to call its function; dispatch never looks anything up by attribute.
        self.events: dict[str, EventFunction] = {}
        #: The live connections of this path.
        self.handlers: list[WebSocketHandler] = []
        #: What ``self`` is for event functions defined as methods of a class.
        self.context: Any = None
        self.modules: list[Module] = []
        if add_to_handlers:
            TornadoWrapper.add_handlers([self.handler_spec()])

    def __repr__(self) -> str:
        return f"<WebSocket {self.path!r} events={sorted(self.events)!r} connections={len(self.handlers)}>"

    def handler_spec(self) -> tuple[str, type[WebSocketHandler], dict[str, Any]]:
        """The Tornado handler spec that serves this path, for mounting it by hand."""
        return ("/ws" + self.path, WebSocketHandler, {"websocket": self})

    def add_event(self, name: str, callback: Callable[..., Any]) -> None:
        """Bind ``callback`` to the event ``name``: the plain call behind `on`."""
        if not callable(callback):
            raise NotCallableError(callback)
        if not isinstance(name, str) or not name:
            raise TypeError(f"An event name should be a non-empty str, not {name!r}.")
        if name in self.events:
            raise WebSocketEventAlreadyBinded(name, self.path)
        self.events[name] = EventFunction.inspect(name, callback)

    @overload
    def on(self, callback: F) -> F: ...

    @overload
    def on(self, callback: None = None, *, name: str) -> Callable[[F], F]: ...

    def on(self, callback: Any = None, *, name: str | None = None) -> Any:
        """Decorator binding a function or method to the event named by its ``__name__``.

        ``@ws.on(name="chat.message")`` binds a name that is not a Python identifier. The function
        receives, by parameter name, ``socket`` (the connection) and ``data`` (a dict); a method of
        a class gets ``self`` from `context`. ``open`` and ``close`` run on connect and disconnect.
        Plain ``def`` functions run in a worker thread (blocking calls and the Django ORM are
        fine there); ``async def`` functions run on the loop. The callback is returned unchanged.
        """
        if callback is None and name is not None:

            def decorator(function: F) -> F:
                self.add_event(name, function)
                return function

            return decorator
        if not callable(callback):
            raise NotCallableError(callback)
        self.add_event(name or callback.__name__, callback)
        return callback

    def bind(self, module: Module) -> None:
        """Attach a `~tornado_websockets.modules.Module`, which binds its own namespaced events."""
        self.modules.append(module)
        module.bind_to(self)

    def emit(self, event: str, data: dict[str, Any] | str | None = None) -> None:
        """Send ``{"event": event, "data": data}`` to every client connected to this path.

        A ``str`` is sent as ``{"message": data}`` and ``None`` as ``{}``. The frame is encoded once,
        whatever the number of clients. Safe from any thread of the server process.

        :raise TypeError: ``event`` is not a str, or ``data`` is not a dict, a str or None.
        :raise EmitHandlerError: no server loop runs in this process, so nobody can be reached.
        """
        frame = protocol.encode_emit(event, data)
        if not TornadoWrapper.call_in_loop(self.broadcast, frame):
            raise EmitHandlerError(event, self.path)

    def broadcast(self, frame: bytes) -> None:
        """Write an encoded frame to every live connection; call on the server loop."""
        for handler in tuple(self.handlers):
            handler.write_frame(frame)
