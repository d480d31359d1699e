"""Server frames on the wire (RFC 6455 section 5.2): header and payload as one ``bytes``, sans I/O.

A server's frames are not masked, so a message's complete frame depends only on its opcode and
payload: a broadcast's frame is the same for every member. `message_frame` keeps the last frame
it built per opcode, by the payload's identity: a fan-out hands the same payload object to every
member's connection, so the frame is built once per broadcast (and per format: the JSON text of
a MessagePack frame, `~tornado_websockets.binaryframes.as_text`, is itself one cached object).
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["BINARY", "CLOSE", "PING", "PONG", "TEXT", "message_frame", "server_frame"]

TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA

_FIN: Final = 0x80
_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack

# The last complete frame per opcode: (payload, frame). A tuple is replaced whole, so a
# connection served by another thread's loop reads a consistent pair.
_last: dict[int, tuple[bytes, bytes]] = {}


def server_frame(opcode: int, payload: bytes, fin: bool = True, flags: int = 0) -> bytes:
    """One unmasked frame: the header for ``payload``'s length, then ``payload``.

    :raise ValueError: a control frame (close, ping, pong) over 125 bytes or not final.
    """
    length = len(payload)
    first = (_FIN if fin else 0) | flags | opcode
    if opcode & 0x8 and (length > 125 or not fin):
        raise ValueError("A control frame holds at most 125 bytes, in one frame.")
    if length < 126:
        return bytes((first, length)) + payload
    if length <= 0xFFFF:
        return _pack_short(first, 126, length) + payload
    return _pack_long(first, 127, length) + payload


def message_frame(opcode: int, payload: bytes) -> bytes:
    """`server_frame` of a whole message, built once for the same payload object in a row."""
    last = _last.get(opcode)
    if last is not None and last[0] is payload:
        return last[1]
    frame = server_frame(opcode, payload)
    _last[opcode] = (payload, frame)
    return frame
