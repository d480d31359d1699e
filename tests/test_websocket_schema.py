"""``manage.py websocket_schema``: the AsyncAPI document on stdout, in-process and as a real command."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
from django.core.management import call_command

from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json").read_text())


@dataclasses.dataclass
class Vote:
    choice: int


def schema(*arguments: str) -> str:
    out = io.StringIO()
    call_command("websocket_schema", *arguments, stdout=out)
    return out.getvalue()


def register() -> None:
    poll = WebSocket("/poll")

    @poll.on
    async def vote(socket: WebSocketHandler, data: Vote) -> None:
        """Cast a vote."""

    poll.emits("tally", None, "The counts so far.")


def test_prints_the_document_of_the_registered_websockets() -> None:
    register()
    output = schema()
    document = json.loads(output)
    jsonschema.validate(document, SCHEMA)
    assert document["info"] == {"title": "WebSocket API", "version": "1.0.0"}
    assert document["channels"]["poll"]["messages"]["vote"]["description"] == "Cast a vote."
    assert document["operations"]["poll.send.tally"]["action"] == "send"
    assert output.startswith('{\n  "asyncapi": "3.0.0"')  # indented by 2, keys sorted


def test_title_version_and_indent_options() -> None:
    register()
    output = schema("--title", "Polls", "--version", "2.1.0", "--indent", "0")
    assert output.count("\n") == 1  # one line, and the newline the command writes
    assert json.loads(output)["info"] == {"title": "Polls", "version": "2.1.0"}
    assert json.loads(schema("--indent", "4")) == json.loads(schema())
    assert schema("--indent", "4").startswith('{\n    "asyncapi"')


def test_the_example_project_lists_its_typed_chat() -> None:
    env: dict[str, Any] = {**os.environ, "DJANGO_SETTINGS_MODULE": "example.settings"}
    done = subprocess.run(
        [sys.executable, "manage.py", "websocket_schema", "--title", "Example"],
        cwd=ROOT / "example_project",
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    assert sorted(document["channels"]) == ["chat", "echo", "progress"]
    say = document["components"]["schemas"]["Say"]
    assert say["properties"]["message"]["maxLength"] == 500
    assert document["operations"]["chat.send.message"]["action"] == "send"
