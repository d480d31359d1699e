"""The echo page's WebSocket: each message goes back to the client that sent it.

Found at start-up by ``tornado_websockets`` (every installed app's ``websockets`` module is), so
nothing imports it by hand.
"""

from typing import Any, TypedDict

from tornado_websockets import WebSocket, WebSocketHandler


class Echo(TypedDict):
    """What comes back: the message as it was sent (text, or any JSON value)."""

    message: Any


ws = WebSocket("/echo")
ws.emits("echo", Echo, "The message sent back, to its sender only.")


@ws.on
async def echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
    """``{"message": ...}`` back to the sender only, as it came: ``[1, 2]`` stays a JSON array."""
    socket.emit("echo", {"message": data.get("message", "")})
