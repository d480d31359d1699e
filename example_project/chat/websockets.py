"""The chat page's WebSocket: signed-in users only, and the name shown is the server's to say.

``socket.user`` is the Django user of the page's session cookie, loaded before the guard runs, so
a client can neither chat anonymously nor speak under someone else's name.
"""

from typing import Any

from tornado_websockets import WebSocket, WebSocketHandler

chat = WebSocket("/chat")

MAX_LENGTH = 500


@chat.guard
async def signed_in(socket: WebSocketHandler) -> bool:
    """Refuse the upgrade (403) without a logged-in user."""
    return bool(socket.user.is_authenticated)


@chat.on
async def message(socket: WebSocketHandler, data: dict[str, Any]) -> None:
    """Send ``{"username", "message"}`` to everyone on the chat, the sender included."""
    text = str(data.get("message", "")).strip()[:MAX_LENGTH]
    if text:
        chat.emit("message", {"username": socket.user.get_username(), "message": text})
