from __future__ import annotations

import datetime
import decimal
import math
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tornado_websockets import codec


@dataclass
class Point:
    x: int
    y: int


@dataclass
class Reading:
    value: float


VALUES: list[Any] = [
    {"event": "chat", "data": {"message": "héllo ☃ \U0001f600", "n": [1, 2.5, True, None]}},
    {"nested": {"a": {"b": {"c": []}}}},
    {"when": datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)},
    {"day": datetime.date(2026, 1, 2), "time": datetime.time(3, 4, 5)},
    {"price": decimal.Decimal("1.10"), "id": uuid.UUID("12345678-1234-5678-1234-567812345678")},
    {"point": Point(1, 2)},
    {"nan": math.nan, "inf": [math.inf]},
    {"inside a dataclass": Reading(math.nan), "in a set": {-math.inf}},
    {1: "int key"},
    {"quote": '"\\/\n'},
]


@pytest.mark.parametrize("value", VALUES)
def test_orjson_and_stdlib_give_the_same_bytes(value: Any) -> None:
    assert codec.BACKEND == "orjson"  # `make test` installs the fast extra
    assert codec.dumps(value) == codec._stdlib_dumps(value)


@pytest.mark.parametrize("value", VALUES[:2])
def test_round_trip(value: Any) -> None:
    assert codec.loads(codec.dumps(value)) == value
    assert codec._stdlib_loads(codec._stdlib_dumps(value)) == value


@pytest.mark.parametrize("dumps", [codec.dumps, codec._stdlib_dumps])
def test_unknown_type_is_a_type_error_naming_it(dumps: Any) -> None:
    class Opaque:
        pass

    with pytest.raises(TypeError, match="Opaque"):
        dumps({"x": Opaque()})


def test_stdlib_loads_rejects_bad_utf8() -> None:
    with pytest.raises(ValueError, match="utf-8"):
        codec._stdlib_loads(b'{"event": "\xff"}')


def test_non_finite_floats_are_null_wherever_they_are() -> None:
    frame = codec._stdlib_dumps({"reading": Reading(math.inf), "readings": (Reading(math.nan),)})
    assert frame == b'{"reading":{"value":null},"readings":[{"value":null}]}'  # JSON, which NaN is not


@pytest.mark.parametrize("loads", [codec.loads, codec._stdlib_loads])
@pytest.mark.parametrize("text", ["[Infinity]", "[-Infinity]", '{"a": NaN}'])
def test_non_json_constants_are_refused_by_both_codecs(loads: Any, text: str) -> None:
    with pytest.raises(ValueError, match=r"not JSON|unexpected character|no digit"):
        loads(text)
