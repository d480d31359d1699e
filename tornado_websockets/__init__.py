"""django-tornado-websockets: real-time WebSockets for Django and Tornado applications.

Every name a user needs is imported from here, one spelling for each in every sample::

    from tornado_websockets import WebSocket, TornadoWrapper, EventError, ConnectionDenied, serve

``import tornado_websockets`` imports no Django: the core serves standalone Tornado scripts.
`serve` (the test helper) and `django_app` are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tornado_websockets.emitter import Emitter
from tornado_websockets.exceptions import (
    ConnectionDenied,
    EmitHandlerError,
    EventError,
    InvalidInstanceError,
    NotCallableError,
    PathAlreadyRegistered,
    PayloadError,
    ProtocolError,
    TornadoWebSocketsError,
    WebSocketEventAlreadyBinded,
)
from tornado_websockets.limits import Limits
from tornado_websockets.modules import Module, ProgressBar
from tornado_websockets.server import Server
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

if TYPE_CHECKING:
    from tornado_websockets.testing import serve

__version__ = "1.0.0.dev0"


def django_app() -> tuple[str, Any, dict[str, Any]]:
    """The catch-all Tornado handler spec serving Django; needs Django set up (imported lazily)."""
    from tornado_websockets.djangoapp import django_app as build

    return build()


def __getattr__(name: str) -> Any:
    """Load `serve` on first use: the test helper is not needed to run a server."""
    if name == "serve":
        from tornado_websockets.testing import serve

        return serve
    raise AttributeError(f"module 'tornado_websockets' has no attribute {name!r}")


__all__ = [
    "ConnectionDenied",
    "EmitHandlerError",
    "Emitter",
    "EventError",
    "InvalidInstanceError",
    "Limits",
    "Module",
    "NotCallableError",
    "PathAlreadyRegistered",
    "PayloadError",
    "ProgressBar",
    "ProtocolError",
    "Server",
    "TornadoWebSocketsError",
    "TornadoWrapper",
    "WebSocket",
    "WebSocketEventAlreadyBinded",
    "WebSocketHandler",
    "__version__",
    "django_app",
    "serve",
]
