"""Typed payloads: conversion tables for both paths (msgspec and the standard library), then live."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import importlib.util
import json
import os
import subprocess
import sys
import types
import uuid
from pathlib import Path
from typing import Any, Literal, TypedDict

import msgspec
import pydantic
import pytest
from django.utils.functional import lazy

from tornado_websockets import asyncapi, codec, delivery, protocol, typed
from tornado_websockets.exceptions import EventError, PayloadError
from tornado_websockets.testing import serve
from tornado_websockets.typed import converter_for, payload_type
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

ROOT = Path(__file__).resolve().parent.parent


class Person(TypedDict):
    name: str
    age: int


@dataclasses.dataclass
class Message:
    author: Person
    text: str
    tags: list[str] = dataclasses.field(default_factory=list)
    mood: Literal["happy", "sad"] = "happy"
    score: float | None = None


class Point(msgspec.Struct):
    x: int
    y: int


class Account(pydantic.BaseModel):
    email: str
    age: int


GOOD = {"author": {"name": "ann", "age": 3}, "text": "hi", "tags": ["a"], "score": 2}
CASES = [
    (Person, {"name": "ann", "age": "3"}, "data.age", "expected int, got str"),
    (Person, {"name": "ann"}, "data.age", "required field missing"),
    (Message, {"author": {"name": 1, "age": 3}, "text": "x"}, "data.author.name", "expected str, got int"),
    (Message, {"author": {"name": "a", "age": 3}}, "data.text", "required field missing"),
    (Message, {**GOOD, "tags": ["a", 2]}, "data.tags[1]", "expected str, got int"),
    (Message, {**GOOD, "score": "high"}, "data.score", "expected float | null, got str"),
    (Person, {"name": "ann", "age": True}, "data.age", "expected int, got bool"),
]


@pytest.mark.parametrize("use_msgspec", [True, False], ids=["msgspec", "stdlib"])
@pytest.mark.parametrize(("annotation", "data", "path", "reason"), CASES)
def test_invalid_data_names_the_field_and_the_reason(
    use_msgspec: bool, annotation: Any, data: dict[str, Any], path: str, reason: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        converter_for(annotation, use_msgspec)(data)
    assert caught.value.path == path
    if use_msgspec and "|" in reason:
        assert caught.value.reason.startswith("expected")  # msgspec words unions its own way
    else:
        assert caught.value.reason == reason
    assert str(caught.value) == f"{caught.value.path}: {caught.value.reason}"


@pytest.mark.parametrize("use_msgspec", [True, False], ids=["msgspec", "stdlib"])
def test_valid_data_is_converted(use_msgspec: bool) -> None:
    message = converter_for(Message, use_msgspec)(GOOD)
    assert message == Message(Person(name="ann", age=3), "hi", ["a"], "happy", 2.0)
    assert isinstance(message.score, float)
    assert converter_for(Person, use_msgspec)({"name": "b", "age": 1, "extra": 0})["name"] == "b"


def test_literal_is_enforced_by_both_paths() -> None:
    for use_msgspec in (True, False):
        with pytest.raises(PayloadError, match=r"data\.mood"):
            converter_for(Message, use_msgspec)({**GOOD, "mood": "angry"})


def test_structs_need_msgspec_and_pydantic_models_work() -> None:
    assert converter_for(Point)({"x": 1, "y": 2}) == Point(1, 2)
    with pytest.raises(TypeError, match=r"pip install 'django-tornado-websockets\[typed\]'"):
        converter_for(Point, use_msgspec=False)
    assert converter_for(Account)({"email": "a@b", "age": 3}) == Account(email="a@b", age=3)
    with pytest.raises(PayloadError) as caught:
        converter_for(Account)({"email": "a@b", "age": "old"})
    assert caught.value.path == "data.age"


def test_untyped_annotations_mean_no_validation() -> None:
    def plain(socket: Any, data): ...  # type: ignore[no-untyped-def]

    def mapping(data: dict[str, Any]) -> None: ...

    def anything(data: Any) -> None: ...

    def typed(data: Person) -> None: ...

    assert [payload_type(f) for f in (plain, mapping, anything)] == [None, None, None]
    assert payload_type(typed) is Person


def test_everyday_types_encode_without_per_call_code() -> None:
    lazy_text = lazy(lambda: "translated", str)()
    value = {
        "when": datetime.datetime(2026, 11, 25, 9, 0, tzinfo=datetime.UTC),
        "day": datetime.date(2026, 11, 25),
        "price": decimal.Decimal("9.99"),
        "id": uuid.UUID(int=1),
        "label": lazy_text,
        "point": Point(1, 2),
        "account": Account(email="a@b", age=3),
        "message": Message(Person(name="a", age=1), "t"),
        "rows": (row for row in [1, 2]),
    }
    assert json.loads(protocol.encode_emit("ev", value))["data"] == {
        "when": "2026-11-25T09:00:00+00:00",
        "day": "2026-11-25",
        "price": "9.99",
        "id": "00000000-0000-0000-0000-000000000001",
        "label": "translated",
        "point": {"x": 1, "y": 2},
        "account": {"email": "a@b", "age": 3},
        "message": {
            "author": {"name": "a", "age": 1},
            "text": "t",
            "tags": [],
            "mood": "happy",
            "score": None,
        },
        "rows": [1, 2],
    }


def test_an_unencodable_object_is_a_type_error_naming_it() -> None:
    class Robot:
        pass

    with pytest.raises(TypeError, match="Robot"):
        protocol.encode_emit("ev", {"who": Robot()})
    with pytest.raises(TypeError, match="Robot"):
        codec._stdlib_dumps({"who": Robot()})


async def test_typed_event_functions_over_a_real_socket() -> None:
    ws = WebSocket("/typed")
    calls: list[Any] = []

    @ws.on
    async def post(socket: WebSocketHandler, data: Message) -> Message:
        calls.append(data)
        return data

    @ws.on
    def untyped(data):  # type: ignore[no-untyped-def]
        calls.append(data)
        return data

    async with serve() as server, server.connect("/typed") as client:
        await client.emit("post", {"author": {"name": "ann", "age": "x"}, "text": "hi"})
        warning = await client.wait_for("warning")
        assert warning == {
            "message": "data.author.age: expected int, got str",
            "event": "post",
            "path": "data.author.age",
            "reason": "expected int, got str",
        }
        with pytest.raises(EventError, match=r"data\.text: required field missing"):
            await client.request("post", {"author": {"name": "ann", "age": 1}})
        assert calls == []  # the function was never called with bad data
        reply = await client.request("post", GOOD)
        assert reply["author"] == {"name": "ann", "age": 3}
        assert isinstance(calls[0], Message)
        assert await client.request("untyped", {"anything": ["goes"]}) == {"anything": ["goes"]}


# Annotations resolved one by one --------------------------------------------------------------------

TYPE_CHECKING_MODULE = """
from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from tornado_websockets.websocket import WebSocket

if TYPE_CHECKING:  # typed code often imports the handler for type checkers only
    from tornado_websockets.websockethandler import WebSocketHandler


class Say(TypedDict):
    message: str


ws = WebSocket("/checked")


@ws.on
async def say(socket: WebSocketHandler, data: Say) -> Say:
    return data
"""


def load(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Import ``source`` as a module of its own file, as a project's ``websockets`` module is."""
    path = tmp_path / "checked_websockets.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("checked_websockets", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "checked_websockets", module)
    spec.loader.exec_module(module)
    return module


async def test_a_type_checking_only_import_does_not_turn_validation_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load(TYPE_CHECKING_MODULE, tmp_path, monkeypatch)
    assert module.ws.events["say"].payload is module.Say
    async with serve() as server, server.connect("/checked") as client:
        await client.emit("say", {"message": 42})
        assert (await client.wait_for("warning"))["path"] == "data.message"
        assert await client.request("say", {"message": "hi"}) == {"message": "hi"}
    document = asyncapi.document([module.ws])
    assert document["channels"]["checked"]["messages"]["say"]["payload"]["properties"]["data"] == {
        "$ref": "#/components/schemas/Say"
    }
    assert "reply" in document["operations"]["checked.receive.say"]


def test_a_data_annotation_that_cannot_be_resolved_is_refused_at_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = TYPE_CHECKING_MODULE.replace("data: Say", "data: WebSocketHandler")
    with pytest.raises(TypeError, match=r"Cannot resolve the annotation of 'data' of say: .*TYPE_CHECKING"):
        load(source, tmp_path, monkeypatch)


# Without msgspec at all ------------------------------------------------------------------------------

WITHOUT_MSGSPEC = """
import sys
sys.modules["msgspec"] = None  # `import msgspec` raises ImportError from now on, as when it is absent

import asyncio, dataclasses, json
from typing import TypedDict

from tornado_websockets import asyncapi, codec, typed
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket

class Person(TypedDict):
    name: str
    age: int

@dataclasses.dataclass
class Post:
    author: Person
    text: str

ws = WebSocket("/typed")

@ws.on
async def post(data: Post) -> Post:
    return data

async def main():
    async with serve() as server, server.connect("/typed") as client:
        await client.emit("post", {"author": {"name": "ann", "age": "3"}, "text": "hi"})
        warning = await client.wait_for("warning")
        reply = await client.request("post", {"author": {"name": "ann", "age": 3}, "text": "hi"})
    schemas = asyncapi.document()["components"]["schemas"]
    print(json.dumps({
        "msgspec": [typed.msgspec is None, codec._msgspec is None, asyncapi.msgspec is None],
        "warning": warning, "reply": reply, "schemas": sorted(schemas),
    }))

asyncio.run(main())
"""


def test_without_msgspec_the_standard_library_path_serves() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_MSGSPEC],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["msgspec"] == [True, True, True]  # every module fell back to the standard library
    assert result["warning"] == {
        "message": "data.author.age: expected int, got str",
        "event": "post",
        "path": "data.author.age",
        "reason": "expected int, got str",
    }
    assert result["reply"] == {"author": {"name": "ann", "age": 3}, "text": "hi"}
    # The application's types, and those of the library's own warning, error and pong events.
    assert result["schemas"] == ["EmptyData", "ErrorData", "Person", "Post", "WarningData"]


# Replies encoded from the return annotation -------------------------------------------------------


class Profile:
    """Not a dict: an object with the fields, as a Django model instance is."""

    def __init__(self, name: str, age: int) -> None:
        self.name, self.age = name, age


@dataclasses.dataclass
class Card:
    name: str
    age: int


def returns_card() -> Card: ...
def returns_person() -> Person: ...
def returns_point() -> Point: ...
def returns_account() -> Account: ...
def returns_cards() -> list[Card]: ...
def returns_nothing() -> None: ...
def returns_any() -> Any: ...
def returns_dict() -> dict[str, int]: ...


@pytest.mark.parametrize("use_msgspec", [True, False])
def test_a_reply_is_checked_against_the_return_annotation(use_msgspec: bool) -> None:
    card = typed.reply_encoder(returns_card, use_msgspec)
    person = typed.reply_encoder(returns_person, use_msgspec)
    assert card is not None
    assert person is not None
    assert codec.loads(codec.dumps(card({"name": "ann", "age": 3}))) == {"name": "ann", "age": 3}
    assert codec.loads(codec.dumps(card(Card("bo", 4)))) == {"name": "bo", "age": 4}
    assert person({"name": "ann", "age": 3}) == {"name": "ann", "age": 3}
    with pytest.raises(PayloadError) as missing:
        person({"name": "ann"})
    assert (missing.value.path, missing.value.reason) == ("reply.age", "required field missing")
    with pytest.raises(PayloadError) as wrong:
        card({"name": "ann", "age": "three"})
    assert wrong.value.path == "reply.age"
    for untyped in (returns_nothing, returns_any, returns_dict):
        assert typed.reply_encoder(untyped, use_msgspec) is None


def test_msgspec_and_pydantic_replies_take_objects_with_the_fields() -> None:
    cards = typed.reply_encoder(returns_cards)
    point = typed.reply_encoder(returns_point)
    account = typed.reply_encoder(returns_account)
    assert cards is not None
    assert point is not None
    assert account is not None
    assert cards([Profile("ann", 3), {"name": "bo", "age": 4}]) == [
        {"name": "ann", "age": 3},
        {"name": "bo", "age": 4},
    ]
    assert point(Point(1, 2)) == {"x": 1, "y": 2}
    assert account(Account(email="a@b.c", age=5)) == {"email": "a@b.c", "age": 5}
    with pytest.raises(PayloadError) as wrong:
        account({"email": "a@b.c"})
    assert wrong.value.path == "reply.age"


async def test_replies_over_a_real_socket_follow_the_annotation() -> None:
    ws = WebSocket("/replies")

    @ws.on
    async def profile(data: dict[str, Any]) -> Card:
        return Profile(data["name"], 7)  # type: ignore[return-value]  # what an ORM object would be

    @ws.on
    async def broken() -> Card:
        return {"name": "no age"}  # type: ignore[return-value]

    async with serve() as server, server.connect("/replies") as client:
        assert await client.request("profile", {"name": "ann"}) == {"name": "ann", "age": 7}
        with pytest.raises(EventError, match="failed on the server"):
            await client.request("broken")
    assert delivery.dropped()[(delivery.ENCODING_ERROR, "/replies")] == 1


class Upload(TypedDict):
    name: str
    content: bytes


@pytest.mark.parametrize("use_msgspec", [True, False], ids=["msgspec", "stdlib"])
def test_a_bytes_field_takes_bytes_or_base64_and_refuses_the_rest(use_msgspec: bool) -> None:
    convert = converter_for(Upload, use_msgspec)
    assert convert({"name": "a", "content": b"\x00\xff"}) == {"name": "a", "content": b"\x00\xff"}
    assert convert({"name": "a", "content": "AP8="}) == {"name": "a", "content": b"\x00\xff"}  # a JSON client
    for bad in (5, "not base64!"):
        with pytest.raises(PayloadError) as raised:
            convert({"name": "a", "content": bad})
        assert raised.value.path == "data.content"


@pytest.mark.parametrize("use_msgspec", [True, False])
def test_a_bytes_reply_stays_bytes(use_msgspec: bool) -> None:
    def thumbnail() -> Upload:
        return {"name": "t", "content": b"\x89PNG"}

    encode = typed.reply_encoder(thumbnail, use_msgspec)
    assert encode is not None
    assert encode(thumbnail()) == {"name": "t", "content": b"\x89PNG"}
