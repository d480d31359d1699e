"""Discovered by the tornado_websockets app at start-up, as a user's app module would be."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

discovered = WebSocket("/discovered")


@discovered.on
async def echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
    socket.emit("echo", data)


@discovered.on
def whoami(socket: WebSocketHandler) -> dict[str, Any]:
    """A plain def: runs in a worker thread, where the ORM is allowed."""
    user = socket.user
    return {
        "authenticated": user.is_authenticated,
        "username": user.get_username(),
        "user_id": socket.user_id,
        "session_key": socket.session.session_key,
        "users": User.objects.count(),
    }


@discovered.on
def create_user(data: dict[str, Any]) -> int:
    return User.objects.create_user(data["username"]).pk
