"""The wire protocol: JSON text frames ``{"event": ..., "data": {...}}`` in both directions.

A frame holding bytes is encoded as MessagePack instead (`tornado_websockets.binaryframes`;
docs/protocol.rst), and a connection that negotiated it may send MessagePack frames too.

Pure data in, data out: nothing here imports Tornado or Django, so decoding, encoding and
validation are tested by tables of inputs and outputs and fuzzed on their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tornado_websockets import binaryframes, codec
from tornado_websockets.exceptions import ProtocolError

__all__ = [
    "ACK_EVENT",
    "ERROR_EVENT",
    "JOINED_EVENT",
    "LEFT_EVENT",
    "METRICS_EVENT",
    "PING_EVENT",
    "PONG_EVENT",
    "RESYNC_EVENT",
    "STREAM_EVENT",
    "WARNING_EVENT",
    "Frame",
    "FrameId",
    "ServerFrame",
    "ack_error_frame",
    "ack_frame",
    "decode",
    "decode_server_frame",
    "encode",
    "encode_emit",
    "error_frame",
    "failure_message",
    "normalize_data",
    "shorten_name",
    "warning_frame",
]

# Every event name the library itself puts on the wire, in one place ----------------------------

#: A frame the server could not use (bad JSON, an unbound event, data of the wrong shape).
WARNING_EVENT = "warning"
#: An event function failed (a frame sent without an ``id``).
ERROR_EVENT = "error"
#: With recovery on: where the client stands in a stream, so that it can recover even if nothing
#: reaches it before it drops.
STREAM_EVENT = "stream"
#: With recovery on, when the frames a client missed are no longer kept: reload your state.
RESYNC_EVENT = "resync"
#: The JavaScript client's liveness probe, answered with `PONG_EVENT` on a path that does not bind it.
PING_EVENT = "ping"
PONG_EVENT = "pong"
#: With ``presence_events=True``: a user's first connection joined a room.
JOINED_EVENT = "joined"
#: With ``presence_events=True``: a user's last connection left a room.
LEFT_EVENT = "left"
#: The dashboard's metrics snapshot, every second.
METRICS_EVENT = "metrics"

INVALID_JSON = "Invalid JSON was sent."
NOT_AN_OBJECT = "The frame should be a JSON object."
NO_EVENT = "There is no event in this JSON."
EVENT_NOT_STRING = "The event should be a string."
DATA_NOT_DICT = "The data should be a dictionary."


#: The reply to a request (a frame sent with an ``id``).
ACK_EVENT = "ack"
ID_INVALID = "The id should be a string (up to 128 characters) or an integer (as JavaScript can hold)."
MAX_ID_LENGTH = 128
MAX_SAFE_INTEGER = 2**53 - 1

#: What a frame's ``id`` may be: the client's own token for matching the reply.
FrameId = int | str


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: the event name, its data (always a dict) and, for a request, its id."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)
    id: FrameId | None = None


@dataclass(frozen=True, slots=True)
class ServerFrame:
    """A frame as a client receives it: ``data`` is any JSON value for an ``ack``, else a dict."""

    event: str
    data: Any = None
    id: FrameId | None = None
    error: dict[str, Any] | None = None
    stream: str | None = None  # with recovery on: the stream the frame belongs to
    seq: int | None = None  # and its number in that stream


def decode_server_frame(message: str | bytes) -> ServerFrame:
    """Decode a frame sent by the server (what the JavaScript and test clients do).

    A ``bytes`` message that is MessagePack (a binary message) is decoded as such.
    """
    if isinstance(message, (bytes, bytearray)) and binaryframes.is_packed(message):
        payload = binaryframes.unpack(bytes(message))
    else:
        payload = codec.loads(message)
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        raise ProtocolError(NOT_AN_OBJECT)
    get = payload.get
    return ServerFrame(payload["event"], get("data"), get("id"), get("error"), get("stream"), get("seq"))


def decode(message: str | bytes, packed: bool = False) -> Frame:
    """Decode a client frame, or raise `ProtocolError` whose message is the warning to send back.

    ``packed``: ``message`` is a binary message on a connection that negotiated MessagePack.
    """
    if packed:
        try:
            payload = binaryframes.unpack(message.encode() if isinstance(message, str) else message)
        except ValueError:
            raise ProtocolError(binaryframes.INVALID_MSGPACK) from None
        return _frame_of(payload)
    try:
        payload = codec.loads(message)
    except (ValueError, RecursionError, TypeError):
        # ValueError covers JSON syntax, bad UTF-8 and oversized integers; deep nesting can
        # exhaust the standard library's recursion limit instead.
        raise ProtocolError(INVALID_JSON) from None
    return _frame_of(payload)


def _frame_of(payload: Any) -> Frame:
    """The frame a decoded message holds, checked whatever its encoding."""
    if not isinstance(payload, dict):
        raise ProtocolError(NOT_AN_OBJECT)
    event = payload.get("event")
    if event is None or event == "":
        raise ProtocolError(NO_EVENT, _id_of(payload))
    if not isinstance(event, str):
        raise ProtocolError(EVENT_NOT_STRING, _id_of(payload))
    frame_id = payload.get("id")
    if frame_id is not None and _id_of(payload) is None:
        raise ProtocolError(ID_INVALID)
    data = payload.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise ProtocolError(DATA_NOT_DICT, frame_id)
    return Frame(event, data, frame_id)


def _id_of(payload: dict[str, Any]) -> FrameId | None:
    """The frame's id when it is a valid one, so even a refused request gets its reply."""
    frame_id = payload.get("id")
    if isinstance(frame_id, str) and len(frame_id) <= MAX_ID_LENGTH:
        return frame_id
    if isinstance(frame_id, int) and not isinstance(frame_id, bool) and abs(frame_id) <= MAX_SAFE_INTEGER:
        return frame_id
    return None


def normalize_data(data: Any) -> Mapping[str, Any]:
    """Apply the emit rule: a ``str`` becomes ``{"message": data}``, ``None`` becomes ``{}``."""
    if type(data) is dict:  # the usual case, before the abstract Mapping check (which costs more)
        return data
    if data is None:
        return {}
    if isinstance(data, str):
        return {"message": data}
    if isinstance(data, Mapping):
        return data
    raise TypeError(
        f"Data should be a dict, a str or None, not {type(data).__qualname__}: "
        "wrap the value in a dict, for example {'value': ...}."
    )


def encode(event: str, data: Mapping[str, Any]) -> bytes:
    """Encode one frame as UTF-8 JSON bytes, ready to be written to any number of sockets.

    A frame whose data holds bytes is MessagePack instead (see `tornado_websockets.binaryframes`).
    """
    try:
        return codec.dumps({"event": event, "data": data})
    except TypeError as error:
        if binaryframes.carries_bytes(error):
            return _pack({"event": event, "data": data}, f'Cannot encode the data of event "{event}"')
        raise TypeError(f'Cannot encode the data of event "{event}": {error}') from None


def _pack(frame: dict[str, Any], context: str) -> bytes:
    try:
        return binaryframes.pack(frame)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{context}: {error}") from None


def encode_emit(event: Any, data: Any = None) -> bytes:
    """Check an emit's arguments as the public ``emit`` documents them, then encode the frame."""
    if not isinstance(event, str):
        raise TypeError(f"Event should be a str, not {type(event).__qualname__}.")
    return encode(event, normalize_data(data))


#: Characters of a client's event name echoed back in a warning or a failed reply: a 900 KB name
#: must not earn a 1.8 MB answer (the name is in the message and in ``event``).
MAX_ECHOED_NAME = 100


def shorten_name(name: str) -> str:
    """``name`` as a warning may echo it: at most `MAX_ECHOED_NAME` characters, and how long it was."""
    if len(name) <= MAX_ECHOED_NAME:
        return name
    return f"{name[:MAX_ECHOED_NAME]}... ({len(name)} characters)"


def _echoed(message: str, event: Any) -> tuple[str, Any]:
    """The message and event name of a warning, with a long client-sent event name shortened in both."""
    if not isinstance(event, str) or len(event) <= MAX_ECHOED_NAME:
        return message, event
    short = shorten_name(event)
    return message.replace(event, short), short


def warning_frame(message: str, **extra: Any) -> bytes:
    """The frame that tells a client its frame was not understood (a long event name shortened)."""
    if "event" in extra:
        message, extra["event"] = _echoed(message, extra["event"])
    return encode(WARNING_EVENT, {"message": message, **extra})


def failure_message(event: str) -> str:
    """What a client is told when an event function fails: the event's name and nothing internal."""
    return f'The event "{event}" failed on the server.'


def error_frame(event: str, message: str | None = None) -> bytes:
    """The frame that tells a client its event function failed, without leaking internals."""
    return encode(ERROR_EVENT, {"message": message or failure_message(event), "event": event})


def ack_frame(frame_id: FrameId, result: Any) -> bytes:
    """The reply to a request: ``{"event": "ack", "id": ..., "data": <the function's return value>}``."""
    try:
        return codec.dumps({"event": ACK_EVENT, "id": frame_id, "data": result})
    except TypeError as error:
        if binaryframes.carries_bytes(error):
            frame = {"event": ACK_EVENT, "id": frame_id, "data": result}
            return _pack(frame, f"Cannot encode the reply to request {frame_id!r}")
        raise TypeError(f"Cannot encode the reply to request {frame_id!r}: {error}") from None


def ack_error_frame(frame_id: FrameId, message: str, event: str | None = None) -> bytes:
    """The reply to a request that failed: ``{"event": "ack", "id": ..., "error": {"message": ...}}``."""
    message, event = _echoed(message, event)
    error: dict[str, Any] = {"message": message}
    if event is not None:
        error["event"] = event
    return codec.dumps({"event": ACK_EVENT, "id": frame_id, "error": error})
