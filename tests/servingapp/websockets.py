"""Discovered at start-up: a socket that says who it acts as."""

from __future__ import annotations

from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

who = WebSocket("/who")


@who.on
async def whoami(socket: WebSocketHandler) -> str:
    return str(socket.user.get_username())


@who.on
async def where(socket: WebSocketHandler) -> dict[str, str]:
    return {"ip": socket.request.remote_ip, "scheme": socket.request.protocol}
