"""The client's two encodings (docs/protocol.rst): JSON text frames, and MessagePack binary frames for bytes.

Sans-I/O. A connection that negotiated the ``tornado-websockets.msgpack`` subprotocol sends a frame holding
bytes as one MessagePack message (a map: ``event``, ``id``, ``data``) and every other frame as JSON text;
without it, bytes travel as base64 strings in JSON. MessagePack needs msgspec (the ``typed`` extra); without
it the client offers no subprotocol and speaks JSON only.
"""

from __future__ import annotations

import base64
from typing import Any

from tornado_websockets import codec
from tornado_websockets.exceptions import ProtocolError
from tornado_websockets.protocol import NOT_AN_OBJECT, ServerFrame, decode_server_frame

try:
    import msgspec
except ImportError:  # the `typed` extra is not installed: JSON only
    msgspec = None  # type: ignore[assignment]

__all__ = ["MSGPACK_AVAILABLE", "SUBPROTOCOL", "decode_frame", "encode_frame", "has_bytes"]

#: The subprotocol that turns MessagePack frames on, for a connection.
SUBPROTOCOL = "tornado-websockets.msgpack"
MSGPACK_AVAILABLE = msgspec is not None

_BYTES = (bytes, bytearray, memoryview)


def has_bytes(value: Any) -> bool:
    """Whether ``value`` holds bytes at any depth (in maps, lists and tuples)."""
    if isinstance(value, _BYTES):
        return True
    if isinstance(value, dict):
        return any(has_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_bytes(item) for item in value)
    return False


def _base64(value: Any) -> Any:
    """``value`` with every bytes value as its standard base64 string (padded), as the server does."""
    if isinstance(value, _BYTES):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {key: _base64(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_base64(item) for item in value]
    return value


def encode_frame(payload: dict[str, Any], msgpack: bool) -> str | bytes:
    """One frame as the message to send: MessagePack when negotiated and it holds bytes, else JSON text.

    :raise TypeError: the data holds a value that neither encoding can carry.
    """
    if has_bytes(payload):
        if msgpack and msgspec is not None:
            # Dates, dataclasses, models... become what JSON would make of them; bytes stay bytes (bin).
            plain = msgspec.to_builtins(
                payload, builtin_types=(bytes, bytearray, memoryview), enc_hook=_plain
            )
            return msgspec.msgpack.encode(plain)
        payload = _base64(payload)
    return codec.dumps(payload).decode("utf-8")


def _plain(value: Any) -> Any:
    """What JSON would make of a value msgspec does not know (the codec's own rules)."""
    return codec.loads(codec.dumps(value))


def decode_frame(message: str | bytes, msgpack: bool) -> ServerFrame:
    """Decode a server frame: a binary message is MessagePack on a negotiated connection, else JSON.

    :raise ValueError: not a frame (`ProtocolError`), or not JSON / MessagePack.
    """
    if not isinstance(message, bytes):
        return decode_server_frame(message)
    if not (msgpack and msgspec is not None):
        # Not negotiated: a binary message is JSON in UTF-8, as the server reads it (never sniffed).
        return decode_server_frame(message.decode("utf-8"))
    try:
        payload = msgspec.msgpack.decode(message)
    except msgspec.DecodeError as error:
        raise ProtocolError(f"Invalid MessagePack was received: {error}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        raise ProtocolError(NOT_AN_OBJECT)
    get = payload.get
    return ServerFrame(payload["event"], get("data"), get("id"), get("error"), get("stream"), get("seq"))
