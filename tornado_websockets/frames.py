"""WebSocket frames in, complete messages out: the server side of RFC 6455's framing, sans I/O.

`FrameParser` takes the bytes a client sent, in chunks of any size, and returns what they mean,
in order: a complete text message as a ``str``, a complete binary message as ``bytes``, and
`Ping`, `Pong`, `Close` and `Failure` events. It does no I/O and imports neither Tornado nor
Django, so it is tested against a reference parser (the ``websockets`` library's sans-I/O
protocol) on random streams cut at random places; `tornado_websockets.framereader` connects it to
a Tornado connection.

What RFC 6455 asks of a server, and what each violation earns (a `Failure`, after which the
parser only looks for the client's close frame):

- client frames must be masked (section 5.1), reserved bits need an extension (5.2), opcodes
  3-7 and 11-15 are reserved, control frames are at most 125 bytes and never fragmented (5.5),
  a continuation needs a message to continue and a new message needs the last one finished
  (5.4), a close frame's code must be one that may be sent (7.4): 1002, protocol error;
- a text message, or a close reason, that is not UTF-8 (8.1): 1007, checked fragment by
  fragment, so a client fails as soon as its bytes cannot be text any more;
- a message longer than ``max_message_size``: 1009, decided from the frame's header, before
  its payload is read or kept;
- a message in more than ``max_fragments`` frames (`MAX_FRAGMENTS` by default): 1009 as well,
  "too many fragments". An empty continuation adds nothing to the size, so without a count a
  client could keep one message open forever, one 6-byte frame at a time.

A fragmented message is kept in one ``bytearray`` (a text message's UTF-8 is checked fragment by
fragment as it arrives, then the whole is decoded once): the memory it holds is its bytes, not an
object per fragment.

Checks run in the reference's order, but at the header: a frame that the header already
condemns fails before its payload arrives.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "INVALID_DATA",
    "MAX_FRAGMENTS",
    "MESSAGE_TOO_BIG",
    "PROTOCOL_ERROR",
    "SENDABLE_CLOSE_CODES",
    "Close",
    "Event",
    "Failure",
    "FrameParser",
    "MaskFunction",
    "Ping",
    "Pong",
    "default_mask",
    "python_mask",
]

#: Close codes this module fails a connection with.
PROTOCOL_ERROR: Final = 1002
INVALID_DATA: Final = 1007
MESSAGE_TOO_BIG: Final = 1009

#: Frames one message may come in, by default (a browser sends one; a client streaming a 1 MiB
#: message in 1 KiB fragments sends 1024).
MAX_FRAGMENTS: Final = 1024

#: Close codes a peer may send (RFC 6455 section 7.4 and the IANA registry), besides 3000-4999.
SENDABLE_CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_OPCODES: Final = frozenset({_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG})

_OPEN, _DRAINING, _CLOSED = "open", "draining", "closed"

_unpack_short = struct.Struct("!H").unpack_from
_unpack_long = struct.Struct("!Q").unpack_from
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")

#: ``mask(key, data) -> data XOR key`` (the key repeated); Tornado's ``websocket_mask`` is one.
MaskFunction = Callable[[bytes, bytes], bytes]


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping from the client: answer it with a pong carrying the same data."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong from the client."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """The client's close frame: ``code`` is None when it carried none. Nothing follows it."""

    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class Failure:
    """The client broke the protocol: close the connection with ``code`` (1002, 1007 or 1009)."""

    code: int
    reason: str


#: What `FrameParser.feed` returns: ``str`` and ``bytes`` are complete text and binary messages.
Event = str | bytes | Ping | Pong | Close | Failure


def python_mask(key: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated: RFC 6455 section 5.3, in pure Python."""
    length = len(data)
    if not length:
        return b""
    repeated = key * (length // 4 + 1)
    value = int.from_bytes(data, "little") ^ int.from_bytes(repeated[:length], "little")
    return value.to_bytes(length, "little")


def default_mask() -> MaskFunction:
    """Tornado's C ``websocket_mask`` when it is built (it usually is), else `python_mask`."""
    try:
        from tornado.speedups import websocket_mask
    except ImportError:
        return python_mask
    return websocket_mask


class FrameParser:
    """The frames one client sends, parsed incrementally (see the module's docstring).

    :param max_message_size: bytes in one message (all its fragments); None: no limit.
    :param mask: the unmasking function (`default_mask` when None).
    :param max_fragments: frames in one message (the first and its continuations); None: no limit.
    """

    __slots__ = (
        "_buffer",
        "_decoder",
        "_failed",
        "_fragment_count",
        "_fragment_opcode",
        "_mask",
        "_message",
        "_needed",
        "_skip",
        "_skip_current",
        "_state",
        "discarded",
        "max_fragments",
        "max_message_size",
    )

    def __init__(
        self,
        max_message_size: int | None = 2**20,
        mask: MaskFunction | None = None,
        max_fragments: int | None = MAX_FRAGMENTS,
    ) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size should be positive, or None for no limit.")
        if max_fragments is not None and max_fragments < 1:
            raise ValueError("max_fragments should be 1 or more, or None for no limit.")
        self.max_message_size = max_message_size
        self.max_fragments = max_fragments
        self._mask = mask or default_mask()
        self._buffer = bytearray()
        #: Bytes the frame at the start of the buffer needs before it can be parsed.
        self._needed = 2
        self._state = _OPEN
        # The fragmented message in progress: its opcode (None: no message), frames so far, bytes.
        self._fragment_opcode: int | None = None
        self._fragment_count = 0
        self._message = bytearray()
        self._decoder: codecs.IncrementalDecoder | None = None  # text: each fragment is checked here
        self._failed = False
        # Draining after a failure: payload bytes still to drop, and whether the frame at the
        # start of the buffer is the one that failed (skipped, never read as the client's close).
        self._skip = 0
        self._skip_current = False
        #: Bytes dropped unread since the failure.
        self.discarded = 0

    @property
    def failed(self) -> bool:
        """True once a `Failure` was returned."""
        return self._failed

    @property
    def closed(self) -> bool:
        """True once the client's close frame was read: whatever follows is ignored."""
        return self._state == _CLOSED

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``, the next bytes from the client; returns the events they complete."""
        if self._state != _OPEN:
            return self._drain(data) if self._state == _DRAINING else []
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._needed:
                return []
            data = bytes(buffer)
            buffer.clear()
        events: list[Event] = []
        end = self._parse(data, events)
        if end < len(data):
            if self._state == _OPEN:
                buffer += data[end:] if end else data
            elif self._state == _DRAINING:
                events.extend(self._drain(data[end:]))
        return events

    def _parse(self, data: bytes, events: list[Event]) -> int:
        """Parse every complete frame of ``data``; returns where the first incomplete one starts."""
        size = len(data)
        position = 0
        mask = self._mask
        limit = self.max_message_size
        while True:
            available = size - position
            if available < 2:
                self._needed = 2
                return position
            first = data[position]
            second = data[position + 1]
            opcode = first & 0x0F
            if opcode not in _OPCODES:
                return self._fail(events, position, PROTOCOL_ERROR, "invalid opcode")
            if not second & 0x80:
                return self._fail(events, position, PROTOCOL_ERROR, "incorrect masking")
            length = second & 0x7F
            header = 6
            if length == 126:
                if available < 4:
                    self._needed = 4
                    return position
                (length,) = _unpack_short(data, position + 2)
                header = 8
            elif length == 127:
                if available < 10:
                    self._needed = 10
                    return position
                (length,) = _unpack_long(data, position + 2)
                header = 14
            fragmented = self._fragment_opcode is not None
            if limit is not None and length > (limit - len(self._message) if fragmented else limit):
                return self._fail(events, position, MESSAGE_TOO_BIG, "message too big")
            if first & 0x70:
                return self._fail(events, position, PROTOCOL_ERROR, "reserved bits must be 0")
            fin = first & 0x80
            if opcode & 0x8:
                if length > 125:
                    return self._fail(events, position, PROTOCOL_ERROR, "control frame too long")
                if not fin:
                    return self._fail(events, position, PROTOCOL_ERROR, "fragmented control frame")
            elif opcode == _CONTINUATION:
                if not fragmented:
                    return self._fail(events, position, PROTOCOL_ERROR, "unexpected continuation frame")
                if self.max_fragments is not None and self._fragment_count >= self.max_fragments:
                    return self._fail(events, position, MESSAGE_TOO_BIG, "too many fragments")
            elif fragmented:
                return self._fail(events, position, PROTOCOL_ERROR, "expected a continuation frame")
            end = position + header + length
            if end > size:
                self._needed = header + length
                return position
            payload = mask(data[end - length - 4 : end - length], data[end - length : end])
            position = end
            if opcode == _TEXT:
                if fin:
                    try:
                        events.append(payload.decode())
                    except UnicodeDecodeError as error:
                        return self._fail(events, position, INVALID_DATA, _utf8_reason(error), whole=True)
                elif not self._start_fragments(opcode, payload, events, position):
                    return position
            elif opcode == _BINARY:
                if fin:
                    events.append(payload)
                else:
                    self._start_fragments(opcode, payload, events, position)
            elif opcode == _CONTINUATION:
                if not self._continue_fragments(payload, bool(fin), events, position):
                    return position
            elif opcode == _PING:
                events.append(Ping(payload))
            elif opcode == _PONG:
                events.append(Pong(payload))
            else:
                self._read_close(payload, events, position)
                return size

    def _start_fragments(self, opcode: int, payload: bytes, events: list[Event], position: int) -> bool:
        self._fragment_opcode = opcode
        self._fragment_count = 1
        self._message += payload
        if opcode == _TEXT:
            self._decoder = _Utf8Decoder()
            try:
                self._decoder.decode(payload)  # checked now, decoded once at the end
            except UnicodeDecodeError as error:
                self._fail(events, position, INVALID_DATA, _utf8_reason(error), whole=True)
                return False
        return True

    def _continue_fragments(self, payload: bytes, fin: bool, events: list[Event], position: int) -> bool:
        self._fragment_count += 1
        self._message += payload
        decoder = self._decoder
        if decoder is not None:
            try:
                decoder.decode(payload, fin)
            except UnicodeDecodeError as error:
                self._fail(events, position, INVALID_DATA, _utf8_reason(error), whole=True)
                return False
        if fin:
            message = self._message
            events.append(message.decode() if decoder is not None else bytes(message))
            self._end_message()
        return True

    def _end_message(self) -> None:
        """Forget the fragmented message in progress (a new buffer: the old one may be large)."""
        self._fragment_opcode = None
        self._fragment_count = 0
        self._message = bytearray()
        self._decoder = None

    def _read_close(self, payload: bytes, events: list[Event], position: int) -> None:
        """The client's close frame: a `Close`, or a `Failure` if its payload is malformed."""
        self._state = _CLOSED
        if len(payload) == 1:
            self._fail(events, position, PROTOCOL_ERROR, "close frame too short", whole=True)
            return
        code = None
        reason = ""
        if payload:
            (code,) = _unpack_short(payload)
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError as error:
                self._fail(events, position, INVALID_DATA, _utf8_reason(error), whole=True)
                return
            if code not in SENDABLE_CLOSE_CODES and not 3000 <= code < 5000:
                self._fail(events, position, PROTOCOL_ERROR, "invalid status code", whole=True)
                return
        if self._fragment_opcode is not None:
            # As the reference does: a close in the middle of a message leaves it incomplete.
            self._fail(events, position, PROTOCOL_ERROR, "incomplete fragmented message", whole=True)
            return
        events.append(Close(code, reason))

    def _fail(self, events: list[Event], position: int, code: int, reason: str, whole: bool = False) -> int:
        """Record a `Failure`; the frame at ``position`` (if not ``whole``ly read) is skipped."""
        events.append(Failure(code, reason))
        self._failed = True
        self._message = bytearray()
        self._decoder = None
        if self._state == _OPEN:
            self._state = _DRAINING
            self._skip_current = not whole
        return position

    def _drain(self, data: bytes) -> list[Event]:
        """After a failure: drop what the client sends until its close frame (a `Close`)."""
        buffer = self._buffer
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            self.discarded += dropped
            data = data[dropped:]
        if not data:
            return []
        buffer += data
        while len(buffer) >= 2:
            length = buffer[1] & 0x7F
            header = 2 + (4 if buffer[1] & 0x80 else 0) + (2 if length == 126 else 8 if length == 127 else 0)
            if len(buffer) < header:
                return []
            if length == 126:
                (length,) = _unpack_short(buffer, 2)
            elif length == 127:
                (length,) = _unpack_long(buffer, 2)
            is_close = buffer[0] & 0x0F == _CLOSE and not self._skip_current and length <= 125
            self._skip_current = False
            if is_close:
                if len(buffer) < header + length:
                    return []
                payload = bytes(buffer[header : header + length])
                if buffer[1] & 0x80:
                    payload = self._mask(bytes(buffer[header - 4 : header]), payload)
                code = _unpack_short(payload)[0] if len(payload) >= 2 else None
                buffer.clear()
                self._state = _CLOSED
                return [Close(code, payload[2:].decode(errors="replace"))]
            dropped = min(header + length, len(buffer))
            del buffer[:dropped]
            self.discarded += dropped
            self._skip = header + length - dropped
            if self._skip:
                return []
        return []


def _utf8_reason(error: UnicodeDecodeError) -> str:
    return f"{error.reason} at position {error.start}"
