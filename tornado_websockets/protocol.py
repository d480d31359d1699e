"""The wire protocol: JSON text frames ``{"event": ..., "data": {...}}`` in both directions.

Pure data in, data out: nothing here imports Tornado or Django, so decoding, encoding and
validation are tested by tables of inputs and outputs and fuzzed on their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tornado_websockets import codec
from tornado_websockets.exceptions import ProtocolError

__all__ = [
    "ERROR_EVENT",
    "WARNING_EVENT",
    "Frame",
    "decode",
    "encode",
    "encode_emit",
    "error_frame",
    "normalize_data",
    "warning_frame",
]

WARNING_EVENT = "warning"
ERROR_EVENT = "error"

INVALID_JSON = "Invalid JSON was sent."
NOT_AN_OBJECT = "The frame should be a JSON object."
NO_EVENT = "There is no event in this JSON."
EVENT_NOT_STRING = "The event should be a string."
DATA_NOT_DICT = "The data should be a dictionary."


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: the event name and its data (always a dict)."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)


def decode(message: str | bytes) -> Frame:
    """Decode a client frame, or raise `ProtocolError` whose message is the warning to send back."""
    try:
        payload = codec.loads(message)
    except (ValueError, RecursionError, TypeError):
        # ValueError covers JSON syntax, bad UTF-8 and oversized integers; deep nesting can
        # exhaust the standard library's recursion limit instead.
        raise ProtocolError(INVALID_JSON) from None
    if not isinstance(payload, dict):
        raise ProtocolError(NOT_AN_OBJECT)
    event = payload.get("event")
    if event is None or event == "":
        raise ProtocolError(NO_EVENT)
    if not isinstance(event, str):
        raise ProtocolError(EVENT_NOT_STRING)
    data = payload.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise ProtocolError(DATA_NOT_DICT)
    return Frame(event, data)


def normalize_data(data: Any) -> Mapping[str, Any]:
    """Apply the emit rule: a ``str`` becomes ``{"message": data}``, ``None`` becomes ``{}``."""
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
    """Encode one frame as UTF-8 JSON bytes, ready to be written to any number of sockets."""
    try:
        return codec.dumps({"event": event, "data": data})
    except TypeError as error:
        raise TypeError(f'Cannot encode the data of event "{event}": {error}') from None


def encode_emit(event: Any, data: Any = None) -> bytes:
    """Check an emit's arguments as the public ``emit`` documents them, then encode the frame."""
    if not isinstance(event, str):
        raise TypeError(f"Event should be a str, not {type(event).__qualname__}.")
    return encode(event, normalize_data(data))


def warning_frame(message: str, **extra: Any) -> bytes:
    """The frame that tells a client its frame was not understood."""
    return encode(WARNING_EVENT, {"message": message, **extra})


def error_frame(event: str) -> bytes:
    """The frame that tells a client its event function failed, without leaking internals."""
    return encode(ERROR_EVENT, {"message": f'The event "{event}" failed on the server.', "event": event})
