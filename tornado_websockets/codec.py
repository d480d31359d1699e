"""The JSON codec: orjson when the ``fast`` extra is installed, the standard library otherwise.

Both produce the same bytes for the same value (compact separators, UTF-8, no ASCII escaping,
non-finite floats as ``null``), so a frame looks the same whichever codec a process uses.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import math
import sys
import uuid
from collections.abc import Iterator
from typing import Any

try:
    import msgspec as _msgspec
except ImportError:  # the `typed` extra is not installed
    _msgspec = None  # type: ignore[assignment]

__all__ = ["BACKEND", "BytesInData", "default", "dumps", "loads"]


class BytesInData(TypeError):  # noqa: N818  # a signal, caught by the protocol, not an error shown
    """The value holds bytes, which JSON cannot carry: the frame is encoded as MessagePack instead."""


def default(value: Any) -> Any:
    """Encode the everyday types that JSON lacks; anything else is a ``TypeError`` naming its type.

    Dates and times become ISO 8601 strings, ``Decimal`` and ``UUID`` strings, dataclasses,
    msgspec Structs and pydantic models objects, Django's lazy translations their text, and sets,
    tuples, generators and query sets lists.
    """
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if _msgspec is not None and isinstance(value, _msgspec.Struct):
        return _msgspec.to_builtins(value)
    if hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):  # a pydantic model
        return value.model_dump(mode="json")
    if _is_lazy_text(value):
        return str(value)
    if isinstance(value, (set, frozenset, tuple, Iterator)) or _is_query_set(value):
        return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise BytesInData("bytes are sent in a MessagePack frame (or as base64 to a JSON client)")
    raise TypeError(f"Object of type {type(value).__qualname__} is not JSON serializable")


def _is_lazy_text(value: Any) -> bool:
    """A Django lazy translation string, checked without importing Django."""
    functional = sys.modules.get("django.utils.functional")
    return functional is not None and isinstance(value, functional.Promise)


def _is_query_set(value: Any) -> bool:
    query = sys.modules.get("django.db.models.query")
    return query is not None and isinstance(value, query.QuerySet)


def _finite(value: Any) -> Any:
    """Replace NaN and infinities by None, as orjson does, for the standard-library path."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _stdlib_dumps(value: Any) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=default)
    except ValueError:
        # allow_nan=False raised: only non-finite floats take this slow path. They may also sit in
        # what `default` returns (a dataclass's fields, a set), hence `_finite` on that too.
        text = json.dumps(
            _finite(value),
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
            default=lambda item: _finite(default(item)),
        )
    return text.encode("utf-8", "strict")


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON (RFC 8259); send null or a string instead.")


def _stdlib_loads(data: str | bytes) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data).decode("utf-8", "strict")
    # NaN and Infinity, which json.loads accepts and orjson refuses, are refused by both.
    return json.loads(data, parse_constant=_not_json)


try:
    import orjson
except ImportError:  # the `fast` extra is not installed
    BACKEND = "json"
    dumps = _stdlib_dumps
    loads = _stdlib_loads
else:
    BACKEND = "orjson"
    _OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS

    def dumps(value: Any) -> bytes:
        """Encode ``value`` as compact UTF-8 JSON bytes."""
        return orjson.dumps(value, default=default, option=_OPTIONS)

    def loads(data: str | bytes) -> Any:
        """Decode JSON text or UTF-8 bytes."""
        return orjson.loads(data)
