"""MessagePack frames: how a frame carrying bytes travels (see docs/protocol.rst).

A connection that negotiated `SUBPROTOCOL` exchanges, beside JSON text frames, binary messages
that each hold one MessagePack map with the same keys. The server sends one exactly when the
frame holds bytes; a client that did not negotiate it gets the same frame as JSON text, each bytes
value as its base64 string (`as_text`). Pure data in, data out: no Tornado, no Django.

Encoded JSON frames start with ``{``; MessagePack frames with a fixmap byte (``0x80``-``0x8f``):
the first byte of an encoded frame tells which it is, in memory, in Redis and in a replay buffer.
"""

from __future__ import annotations

import base64
import functools
import math
from typing import Any

from tornado_websockets import codec

try:
    import msgspec
except ImportError:  # the `binary` extra is not installed: JSON only, bytes as base64
    msgspec = None  # type: ignore[assignment]  # the module is optional

__all__ = [
    "INVALID_MSGPACK",
    "SUBPROTOCOL",
    "as_text",
    "available",
    "carries_bytes",
    "is_packed",
    "pack",
    "text_value",
    "unpack",
    "with_sequence",
]

#: The ``Sec-WebSocket-Protocol`` a client asks for to exchange MessagePack frames.
SUBPROTOCOL = "tornado-websockets.msgpack"
#: The warning for a binary message that is not a MessagePack frame the server can read.
INVALID_MSGPACK = "Invalid MessagePack was sent."

_BYTES = (bytes, bytearray, memoryview)
_JSON_OPEN = 0x7B  # "{"


def available() -> bool:
    """Whether this process can speak MessagePack (msgspec, the ``binary`` extra, is installed)."""
    return msgspec is not None


def is_packed(frame: bytes) -> bool:
    """Whether an encoded frame is MessagePack (else it is JSON text)."""
    return bool(frame) and frame[0] != _JSON_OPEN


def carries_bytes(error: BaseException) -> bool:
    """Whether a JSON encoding failed because the value holds bytes (`codec.BytesInData`)."""
    current: BaseException | None = error
    while current is not None:  # orjson wraps what `default` raised; the standard library does not
        if isinstance(current, codec.BytesInData):
            return True
        current = current.__cause__ or current.__context__
    return False


def _packable(value: Any) -> Any:
    """``value`` with what MessagePack lacks converted as JSON converts it; bytes kept as bytes."""
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(key): _packable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_packable(item) for item in value]
    return _packable(codec.default(value))


def text_value(value: Any) -> Any:
    """``value`` with every bytes value replaced by its base64 string: what a JSON client gets."""
    if isinstance(value, _BYTES):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {key: text_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [text_value(item) for item in value]
    if isinstance(value, (str, int, float)) or value is None:
        return value
    return text_value(codec.default(value))


def pack(frame: dict[str, Any]) -> bytes:
    """Encode a frame (a dict with str keys) as MessagePack, or as JSON with base64 without msgspec."""
    if msgspec is None:
        return codec.dumps(text_value(frame))
    return msgspec.msgpack.encode(_packable(frame))


def _no_ext(code: int, data: memoryview) -> Any:
    raise ValueError("MessagePack extension types are not accepted.")


if msgspec is not None:
    _decoder = msgspec.msgpack.Decoder(ext_hook=_no_ext)


def unpack(message: bytes) -> Any:
    """Decode a MessagePack message; ``ValueError`` when it is not one the protocol accepts."""
    if msgspec is None:
        raise ValueError(INVALID_MSGPACK)
    try:
        value = _decoder.decode(message)
    except (msgspec.DecodeError, ValueError, RecursionError):
        raise ValueError(INVALID_MSGPACK) from None
    _check(value)
    return value


_PLAIN = (str, int, float, bool, bytes, type(None))


def _check(value: Any) -> None:
    """Refuse map keys that are not strings (``**data`` needs str) and what msgspec reads from an
    extension type without asking (the timestamp, as a ``datetime``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(INVALID_MSGPACK)
            _check(item)
    elif isinstance(value, list):
        for item in value:
            _check(item)
    elif not isinstance(value, _PLAIN):
        raise ValueError(INVALID_MSGPACK)


@functools.lru_cache(maxsize=2)
def as_text(frame: bytes) -> bytes:
    """A MessagePack frame as the JSON text frame a client without MessagePack gets.

    Cached: a broadcast writes the same frame object to every member one after the other, so it is
    converted once however many JSON clients there are. Two entries only: a frame may be megabytes.
    """
    if msgspec is None:  # cannot happen: without msgspec no frame is packed
        return frame
    return codec.dumps(text_value(msgspec.msgpack.decode(frame)))


def with_sequence(frame: bytes, stream: str, seq: int) -> bytes:
    """Add ``stream`` and ``seq`` to an encoded MessagePack frame without encoding it again.

    The frame is a fixmap (at most 15 entries; a frame has at most 5 before these two): its
    first byte counts the entries, so two more is that byte plus two and the pairs appended.
    """
    assert msgspec is not None
    tail = msgspec.msgpack.encode(["stream", stream, "seq", seq])[1:]  # the array's items, header dropped
    return bytes((frame[0] + 2,)) + frame[1:] + tail
