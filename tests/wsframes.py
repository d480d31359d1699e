"""Client frames built by hand for the frame reader's tests: any opcode, flag, length or mask."""

from __future__ import annotations

import os
import struct

from tornado_websockets.frames import python_mask


def client_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length_bytes: int | None = None,
    key: bytes | None = None,
) -> bytes:
    """One frame as a client writes it; ``length_bytes`` (0, 2 or 8) forces the length's encoding."""
    length = len(payload)
    needed = 0 if length < 126 else 2 if length < 65536 else 8
    length_bytes = needed if length_bytes is None else max(length_bytes, needed)
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    if length_bytes == 0:
        head += bytes([mask_bit | length])
    elif length_bytes == 2:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    key = os.urandom(4) if key is None else key
    return head + key + python_mask(key, payload)


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    """A close frame's payload: the code (none: empty) and the reason's bytes."""
    return b"" if code is None else struct.pack("!H", code) + reason
