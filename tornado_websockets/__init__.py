"""django-tornado-websockets: real-time WebSockets for Django and Tornado applications.

``import tornado_websockets`` imports no Django: the core serves standalone Tornado scripts.
"""

from __future__ import annotations

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
]
