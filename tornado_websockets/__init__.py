"""django-tornado-websockets: real-time WebSockets for Django and Tornado applications.

``import tornado_websockets`` imports no Django: the core serves standalone Tornado scripts.
"""

from __future__ import annotations

from typing import Any

from tornado_websockets.exceptions import (
    EmitHandlerError,
    InvalidInstanceError,
    NotCallableError,
    ProtocolError,
    TornadoWebSocketsError,
    WebSocketEventAlreadyBinded,
)
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

__version__ = "1.0.0.dev0"


def django_app() -> tuple[str, Any, dict[str, Any]]:
    """The catch-all Tornado handler spec serving Django; needs Django set up (imported lazily)."""
    from tornado_websockets.djangoapp import django_app as build

    return build()


__all__ = [
    "EmitHandlerError",
    "InvalidInstanceError",
    "NotCallableError",
    "ProtocolError",
    "TornadoWebSocketsError",
    "TornadoWrapper",
    "WebSocket",
    "WebSocketEventAlreadyBinded",
    "WebSocketHandler",
    "__version__",
    "django_app",
]
