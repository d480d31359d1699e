"""Module: namespaced events bound on a WebSocket, over a real server."""

from __future__ import annotations

from typing import Any

import pytest

from tornado_websockets.modules import Module
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


class Greeter(Module):
    """A module that greets each new client and answers ``module_greeter_hello``."""

    def __init__(self) -> None:
        super().__init__("greeter_")

    def initialize(self) -> None:
        @self.on
        async def hello(socket: WebSocketHandler, data: dict[str, Any]) -> None:
            self.emit("hello", {"to": data.get("name", "")})

    def on_open(self, socket: WebSocketHandler) -> None:
        socket.emit(self.name + "welcome", {"path": self.websocket.path})


def test_an_unbound_module_says_how_to_bind_it() -> None:
    with pytest.raises(RuntimeError, match=r"ws\.bind"):
        Module("x").emit("update")


def test_bound_events_are_namespaced_next_to_the_applications_own() -> None:
    ws = WebSocket("/module")

    @ws.on
    def message() -> None: ...

    module = Module("chat_")
    ws.bind(module)

    @module.on
    def message_() -> None: ...

    assert {"message", "module_chat_message_"} <= set(ws.events)
    assert ws.modules == [module]
    assert repr(module) == "<Module 'module_chat_' on '/module'>"


def test_the_context_is_the_websockets() -> None:
    ws = WebSocket("/module")
    module = Module("m_")
    ws.bind(module)
    module.context = "shared"
    assert ws.context == "shared"


async def test_a_module_greets_clients_and_answers_its_events() -> None:
    ws = WebSocket("/greet")
    ws.bind(Greeter())
    async with serve() as server, server.connect("/greet") as first, server.connect("/greet") as second:
        assert await first.wait_for("module_greeter_welcome") == {"path": "/greet"}
        await first.emit("module_greeter_hello", {"name": "ann"})
        assert await second.wait_for("module_greeter_hello") == {"to": "ann"}  # emitted to every client
        await first.emit("hello", {"name": "ann"})  # not the module's: the name is namespaced
        assert (await first.wait_for("warning"))["event"] == "hello"
