"""How the load client talks to each server: pure bytes in, bytes out, no sockets.

Every server under test answers the same two events: ``echo`` sends the data back to the sender,
``broadcast`` sends it as ``tick`` to every client. Three of them speak this library's JSON frames
``{"event": ..., "data": ...}``; python-socketio speaks Socket.IO over Engine.IO, whose handshake
and pings the client must answer itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

try:
    import orjson
except ImportError:  # the smoke test runs in the main venv, with or without the fast extra
    orjson = None  # type: ignore[assignment]

__all__ = ["DIALECTS", "Dialect", "Incoming", "JsonDialect", "SocketIODialect"]


def _dumps(value: Any) -> bytes:
    if orjson is not None:
        return bytes(orjson.dumps(value))
    return json.dumps(value, separators=(",", ":")).encode()


def _loads(data: bytes | str) -> Any:
    return orjson.loads(data) if orjson is not None else json.loads(data)


@dataclass(frozen=True, slots=True)
class Incoming:
    """What one received text message means to the client.

    ``event``/``data`` for an application event; ``reply`` is a message the client must send back
    at once (Engine.IO pong, Socket.IO namespace connect); ``ready`` marks the end of the handshake.
    """

    event: str | None = None
    data: Any = None
    reply: bytes | None = None
    ready: bool = False


class Dialect:
    """A wire format: the URL path to connect to, how to encode an event, how to read a message."""

    name = ""
    url_path = ""
    #: True when the connection can carry events as soon as the WebSocket is open.
    ready_on_open = True

    def url(self, port: int, host: str = "127.0.0.1") -> str:
        """The ``ws://`` URL of the bench endpoint on ``port``."""
        return f"ws://{host}:{port}{self.url_path}"

    def encode(self, event: str, data: Any) -> bytes:
        """One event as the text message the server expects."""
        raise NotImplementedError

    def decode(self, message: bytes) -> Incoming:
        """What a text message from the server means."""
        raise NotImplementedError


class JsonDialect(Dialect):
    """``{"event": ..., "data": ...}`` text frames: ours, raw Tornado and the Channels consumer."""

    name = "json"
    url_path = "/ws/bench"

    def encode(self, event: str, data: Any) -> bytes:
        return _dumps({"event": event, "data": data})

    def decode(self, message: bytes) -> Incoming:
        frame = _loads(message)
        if not isinstance(frame, dict):
            return Incoming()
        return Incoming(frame.get("event"), frame.get("data"))


class SocketIODialect(Dialect):
    """Socket.IO 5 over Engine.IO 4, WebSocket transport only (no HTTP long-polling first).

    The server opens with ``0{...}``; the client joins the default namespace with ``40`` and is
    ready at the server's ``40{...}``. Events are ``42["name", data]``. The server pings with
    ``2`` and closes clients that do not answer ``3``.
    """

    name = "socketio"
    url_path = "/socket.io/?EIO=4&transport=websocket"
    ready_on_open = False

    def encode(self, event: str, data: Any) -> bytes:
        return b"42" + _dumps([event, data])

    def decode(self, message: bytes) -> Incoming:
        if message.startswith(b"42"):
            packet = _loads(message[2:])
            if isinstance(packet, list) and packet and isinstance(packet[0], str):
                return Incoming(packet[0], packet[1] if len(packet) > 1 else None)
            return Incoming()
        if message == b"2":
            return Incoming(reply=b"3")
        if message.startswith(b"40"):
            return Incoming(ready=True)
        if message.startswith(b"0"):
            return Incoming(reply=b"40")
        return Incoming()


DIALECTS: dict[str, Dialect] = {dialect.name: dialect for dialect in (JsonDialect(), SocketIODialect())}
