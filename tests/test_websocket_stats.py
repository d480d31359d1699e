"""``manage.py websocket_stats``: this process's snapshot, or a running server's with ``--url``."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests import explorer_urls
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


@pytest.fixture(autouse=True)
def urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF=explorer_urls.__name__, TEMPLATES=explorer_urls.TEMPLATES):
        yield


def stats(*arguments: str) -> str:
    out = io.StringIO()
    call_command("websocket_stats", *arguments, stdout=out)
    return out.getvalue()


def register_echo() -> WebSocket:
    echo = WebSocket("/echo")

    @echo.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("said", data)

    return echo


def row(table: str, path: str) -> list[str]:
    (line,) = [line for line in table.splitlines() if line.startswith(path + " ")]
    return line.split()


def test_the_table_has_a_row_per_path_under_the_headings() -> None:
    register_echo()
    WebSocket("/chat")
    output = stats()
    lines = output.splitlines()
    assert lines[0].split()[:4] == ["path", "conns", "users", "rooms"]
    assert row(output, "/chat") == ["/chat", *["0"] * 10]
    assert row(output, "/echo")[0] == "/echo"
    assert "backplane Broker (local)" in output


def test_without_paths_the_table_says_so() -> None:
    assert "(no WebSocket paths)" in stats()


def test_json_is_the_snapshot() -> None:
    register_echo()
    data = json.loads(stats("--json"))
    assert set(data) == {"process", "paths", "drops_elsewhere", "backplane", "in_flight"}
    assert data["paths"]["/echo"]["frames_in"] == 0


@override_settings(DEBUG=True)
async def test_url_reads_a_running_servers_snapshot() -> None:
    register_echo()
    async with serve(django=True) as server, server.connect("/echo") as client:
        for n in range(3):
            await client.emit("say", {"n": n})
            await client.wait_for("said")
        url = server.http_url("/ws-api/metrics.json")
        table = await asyncio.to_thread(stats, "--url", url)
        data = json.loads(await asyncio.to_thread(stats, "--url", url, "--json"))
    # path, connections, users, rooms, frames in, frames out
    assert row(table, "/echo")[:6] == ["/echo", "1", "0", "0", "3", "3"]
    assert data["paths"]["/echo"]["connections"] == 1


@override_settings(DEBUG=False)
async def test_a_refused_url_names_the_setting() -> None:
    async with serve(django=True) as server:
        url = server.http_url("/ws-api/metrics.json")
        with pytest.raises(CommandError, match=r"404.*TORNADO\['metrics'\]"):
            await asyncio.to_thread(stats, "--url", url)


def test_an_unreachable_url_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="Could not read a snapshot"):
        stats("--url", "http://127.0.0.1:9/metrics.json", "--timeout", "2")
