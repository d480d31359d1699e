"""Module: a namespaced group of events sharing one `WebSocket` with the application's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tornado_websockets.websocket import WebSocket
    from tornado_websockets.websockethandler import WebSocketHandler

__all__ = ["Module"]

F = TypeVar("F", bound=Callable[..., Any])


class Module:
    """Base class of modules; every event it binds or emits is prefixed with ``module_<name>``.

    Subclasses override `initialize` to bind their events and `on_open` to greet new clients.
    """

    def __init__(self, name: str = "") -> None:
        self.name = "module_" + name
        self._websocket: WebSocket | None = None

    def __repr__(self) -> str:
        path = self._websocket.path if self._websocket is not None else None
        return f"<{type(self).__qualname__} {self.name!r} on {path!r}>"

    @property
    def websocket(self) -> WebSocket:
        """The `WebSocket` this module is bound to."""
        if self._websocket is None:
            raise RuntimeError(f"{self!r} is not bound yet: call ws.bind(module) first.")
        return self._websocket

    def bind_to(self, websocket: WebSocket) -> None:
        """Called by ``WebSocket.bind``; binds the module's events."""
        self._websocket = websocket
        self.initialize()

    def initialize(self) -> None:
        """Bind the module's events; the base module binds none."""

    def on_open(self, socket: WebSocketHandler) -> None:
        """Called on the loop when a client connects to the module's path."""

    def on(self, callback: F) -> F:
        """Like ``WebSocket.on``, with the event name prefixed by the module's name."""
        self.websocket.add_event(self.name + callback.__name__, callback)
        return callback

    def emits(self, event: str, payload: Any = None, description: str | None = None) -> None:
        """Like ``WebSocket.emits``: declare an event the module sends, for the AsyncAPI document."""
        self.websocket.emits(self.name + event, payload, description)

    def emit(self, event: str, data: dict[str, Any] | str | None = None) -> None:
        """Like ``WebSocket.emit``, with the event name prefixed by the module's name."""
        self.websocket.emit(self.name + event, data)

    @property
    def context(self) -> Any:
        """The bound WebSocket's ``context``."""
        return self.websocket.context

    @context.setter
    def context(self, value: Any) -> None:
        self.websocket.context = value
