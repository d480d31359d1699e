"""The AsyncAPI 3.0 document, validated against the official JSON schema (from @asyncapi/specs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypedDict

import jsonschema
import pytest

from tornado_websockets import asyncapi
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

SCHEMA = json.loads((Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json").read_text())


class Say(TypedDict):
    text: str


@dataclasses.dataclass
class NewsItem:
    title: str
    score: int | None = None


def register() -> tuple[WebSocket, WebSocket]:
    chat = WebSocket("/chat/<room>")

    @chat.on(name="chat.message")
    async def message(socket: WebSocketHandler, data: Say) -> None:
        """Post a message to the room.

        Everyone in the room receives it as ``said``.
        """

    @chat.on
    async def count(data: Say) -> int:
        """How many people are in the room."""
        return 0

    @chat.on
    async def open(socket: WebSocketHandler) -> None: ...

    chat.emits("said", Say, "A message posted in the room.")
    chat.emits("news", NewsItem)
    echo = WebSocket("/echo")

    @echo.on
    def echo_event(socket: WebSocketHandler, data: dict[str, Any]) -> None: ...

    return chat, echo


@pytest.mark.parametrize("use_msgspec", [True, False], ids=["msgspec", "stdlib"])
def test_document_is_valid_asyncapi_3(use_msgspec: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not use_msgspec:
        monkeypatch.setattr(asyncapi, "msgspec", None)
    register()
    doc = asyncapi.document(title="Chat", version="2.0.0", description="The chat API.")
    jsonschema.Draft7Validator(SCHEMA).validate(doc)

    chat = doc["channels"]["chat_room"]
    assert chat["address"] == "/ws/chat/{room}"
    assert set(chat["parameters"]) == {"room"}
    library = {"emit_warning", "emit_error", "emit_ack", "emit_pong"}  # every path sends them
    assert set(chat["messages"]) == {
        "chat_message",
        "count",
        "count_reply",
        "emit_said",
        "emit_news",
        *library,
    }
    message = chat["messages"]["chat_message"]
    assert message["name"] == "chat.message"
    assert message["description"].startswith("Post a message to the room.")
    assert message["payload"]["properties"]["event"] == {"const": "chat.message"}
    assert message["payload"]["properties"]["data"] == {"$ref": "#/components/schemas/Say"}
    assert doc["components"]["schemas"]["Say"]["properties"]["text"] == {"type": "string"}
    assert doc["components"]["schemas"]["NewsItem"]["required"] == ["title"]

    operations = doc["operations"]
    assert operations["chat_room.receive.chat_message"]["action"] == "receive"
    assert operations["chat_room.receive.chat_message"]["summary"] == "Post a message to the room."
    assert "reply" in operations["chat_room.receive.count"]
    assert "reply" not in operations["chat_room.receive.chat_message"]
    assert operations["chat_room.send.said"]["action"] == "send"
    assert "chat_room.receive.open" not in operations  # reserved events are not messages
    assert doc["channels"]["echo"]["messages"]["echo_event"]["payload"]["properties"]["data"] == {
        "type": "object"
    }


def test_emits_checks_the_event_name() -> None:
    with pytest.raises(TypeError, match="event name"):
        WebSocket("/x").emits("", None)


def test_an_empty_process_is_still_a_valid_document() -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(asyncapi.document())


def test_the_library_declares_every_event_it_sends() -> None:
    from tornado_websockets import ProgressBar

    lobby = WebSocket("/lobby", presence_events=True, recover=30)
    progress = WebSocket("/progress")
    progress.bind(ProgressBar("demo"))
    plain = WebSocket("/plain")
    plain.emits("warning", Say, "The application's own description wins.")
    doc = asyncapi.document([lobby, progress, plain])
    jsonschema.validate(doc, SCHEMA)

    def sent(channel: str) -> set[str]:
        prefix = f"{channel}.send."
        return {operation[len(prefix) :] for operation in doc["operations"] if operation.startswith(prefix)}

    assert sent("lobby") == {"warning", "error", "ack", "pong", "joined", "left", "stream", "resync"}
    assert sent("progress") == {
        "warning",
        "error",
        "ack",
        "pong",
        "module_progressbar_demo_init",
        "module_progressbar_demo_update",
        "module_progressbar_demo_done",
    }
    assert sent("plain") == {"warning", "error", "ack", "pong"}
    messages = doc["channels"]["plain"]["messages"]
    assert messages["emit_warning"]["description"] == "The application's own description wins."
    ack = doc["channels"]["lobby"]["messages"]["emit_ack"]["payload"]
    assert set(ack["required"]) == {"event", "id"}
    assert "error" in ack["properties"]
    joined = doc["channels"]["lobby"]["messages"]["emit_joined"]["payload"]["properties"]["data"]
    assert joined == {"$ref": "#/components/schemas/PresenceMember"}
    assert set(doc["components"]["schemas"]["PresenceMember"]["required"]) == {"room", "user", "name"}


@pytest.mark.parametrize(
    ("rest", "markdown"),
    [
        ("receives it as ``message``.", "receives it as `message`."),
        ("see :class:`~tornado_websockets.limits.Limits`", "see `Limits`"),
        (
            "see :func:`the document <tornado_websockets.asyncapi.document>`",
            "see `tornado_websockets.asyncapi.document`",
        ),
        ("the `WebSocket` path", "the `WebSocket` path"),
        ("**strong** and *em* stay", "**strong** and *em* stay"),
        ("<b>not markup</b> stays text", "<b>not markup</b> stays text"),  # the page writes it as text
    ],
)
def test_docstrings_become_commonmark_descriptions(rest: str, markdown: str) -> None:
    assert asyncapi.markdown_inline(rest) == markdown


class Upload(TypedDict):
    name: str
    content: bytes


@pytest.mark.parametrize("use_msgspec", [True, False], ids=["msgspec", "stdlib"])
def test_bytes_are_declared_as_binary_content(use_msgspec: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not use_msgspec:
        monkeypatch.setattr(asyncapi, "msgspec", None)
    files = WebSocket("/files")

    @files.on
    async def upload(data: Upload) -> bytes:
        """Store a file; the reply is its thumbnail."""
        return b""

    files.emits("thumb", Upload)
    doc = asyncapi.document([files])
    jsonschema.Draft7Validator(SCHEMA).validate(doc)
    messages = doc["channels"]["files"]["messages"]
    assert doc["components"]["schemas"]["Upload"]["properties"]["content"] == {
        "type": "string",
        "contentEncoding": "base64",
    }
    for key in ("upload", "upload_reply", "emit_thumb"):
        assert messages[key]["contentType"] == "application/vnd.msgpack", key
    assert "contentType" not in messages["emit_warning"]  # JSON, the default content type
