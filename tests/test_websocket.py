"""WebSocket: registration, binding, and emit to every client over real sockets."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tests.polling import wait_until
from tornado_websockets import codec, delivery, protocol
from tornado_websockets.exceptions import EmitHandlerError, NotCallableError, WebSocketEventAlreadyBinded
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


@pytest.mark.parametrize(
    ("given", "path"), [("/echo", "/echo"), ("echo", "/echo"), ("  chat/room ", "/chat/room"), ("", "/")]
)
def test_path_is_stripped_and_rooted(given: str, path: str) -> None:
    assert WebSocket(given).path == path


@pytest.mark.parametrize("path", [None, 1, b"/x", ["/x"]])
def test_path_must_be_a_str(path: Any) -> None:
    with pytest.raises(TypeError, match="path should be a str"):
        WebSocket(path)


def test_registers_its_handler_spec() -> None:
    ws = WebSocket("/echo")
    assert TornadoWrapper.handlers == [("/ws/echo", WebSocketHandler, {"websocket": ws})]


def test_add_to_handlers_false_registers_nothing() -> None:
    ws = WebSocket("/manual", add_to_handlers=False)
    assert TornadoWrapper.handlers == []
    assert ws.handler_spec() == ("/ws/manual", WebSocketHandler, {"websocket": ws})


def test_on_binds_by_name_and_returns_the_function() -> None:
    ws = WebSocket("/x")

    def hello(socket: Any, data: Any) -> None: ...

    assert ws.on(hello) is hello
    assert ws.events["hello"].callback is hello


def test_on_with_explicit_name() -> None:
    ws = WebSocket("/x")

    @ws.on(name="chat.message")
    def anything(data: Any) -> None: ...

    assert list(ws.events) == ["chat.message"]
    assert anything.__name__ == "anything"


@pytest.mark.parametrize("thing", ["name", 42, None])
def test_on_rejects_non_callables(thing: Any) -> None:
    with pytest.raises(NotCallableError) as caught:
        WebSocket("/x").on(thing)
    assert caught.value.thing == thing


def test_binding_an_event_twice_raises() -> None:
    ws = WebSocket("/room")

    @ws.on
    def chat() -> None: ...

    with pytest.raises(WebSocketEventAlreadyBinded) as caught:

        @ws.on(name="chat")
        def other() -> None: ...

    assert (caught.value.event, caught.value.path) == ("chat", "/room")


def test_same_event_on_two_paths_is_fine() -> None:
    for path in ("/a", "/b"):
        WebSocket(path).on(name="ping")(lambda: None)


def test_emit_without_a_server_loop_raises_emit_handler_error() -> None:
    ws = WebSocket("/feed")
    with pytest.raises(EmitHandlerError) as caught:
        ws.emit("news", "hello")
    assert (caught.value.event, caught.value.path) == ("news", "/feed")


def test_emit_in_an_asyncio_loop_that_is_no_server_raises_emit_handler_error() -> None:
    ws = WebSocket("/feed")

    async def script() -> None:  # asyncio.run() in a script, before or without any server
        ws.emit("news", "hello")

    with pytest.raises(EmitHandlerError) as caught:
        asyncio.run(script())
    assert (caught.value.event, caught.value.path) == ("news", "/feed")


@pytest.mark.parametrize(("event", "data"), [(1, None), ("ev", 5), ("ev", ["x"])])
def test_emit_checks_its_arguments_first(event: Any, data: Any) -> None:
    with pytest.raises(TypeError):
        WebSocket("/feed").emit(event, data)


async def test_emit_with_a_loop_and_no_client_is_a_no_op() -> None:
    ws = WebSocket("/feed")
    async with serve():
        ws.emit("news", {"n": 1})


async def test_emit_reaches_every_client_with_normalized_data() -> None:
    ws = WebSocket("/feed")
    async with serve() as server, server.connect("/feed") as first, server.connect("/feed") as second:
        await wait_until(lambda: len(ws.handlers) == 2)
        ws.emit("news", "hello")
        ws.emit("nothing")
        ws.emit("dict", {"a": [1]})
        for client in (first, second):
            assert await client.wait_for("news") == {"message": "hello"}
            assert await client.wait_for("nothing") == {}
            assert await client.wait_for("dict") == {"a": [1]}


async def test_emit_encodes_once_whatever_the_number_of_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    ws = WebSocket("/feed")
    calls: list[Any] = []
    real_dumps = codec.dumps

    def counting_dumps(value: Any) -> bytes:
        calls.append(value)
        return real_dumps(value)

    async with serve() as server:
        clients = [await server.connect("/feed") for _ in range(5)]
        await wait_until(lambda: len(ws.handlers) == 5)
        monkeypatch.setattr(codec, "dumps", counting_dumps)
        ws.emit("news", {"n": 1})
        monkeypatch.setattr(codec, "dumps", real_dumps)
        for client in clients:
            assert await client.wait_for("news") == {"n": 1}
            client.close()
    assert calls == [{"event": "news", "data": {"n": 1}}]


async def test_emit_from_another_thread_is_delivered() -> None:
    ws = WebSocket("/feed")
    async with serve() as server, server.connect("/feed") as client:
        await wait_until(lambda: len(ws.handlers) == 1)
        errors: list[BaseException] = []

        def from_thread() -> None:
            try:
                for n in range(50):
                    ws.emit("tick", {"n": n})
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        thread = threading.Thread(target=from_thread)
        thread.start()
        await asyncio.to_thread(thread.join)
        assert errors == []
        assert [(await client.wait_for("tick"))["n"] for _ in range(50)] == list(range(50))


async def test_emit_skips_closed_connections_and_counts_them() -> None:
    ws = WebSocket("/feed")
    async with serve() as server, server.connect("/feed") as client:
        await wait_until(lambda: len(ws.handlers) == 1)
        handler = ws.handlers[0]
        handler.close(1000)
        handler.write_frame(protocol.encode("late", {}))
        assert ws.handlers == []
        ws.emit("later")  # reaches nobody: the closed connection left at once
        assert delivery.dropped() == {(delivery.CONNECTION_CLOSED, "/feed"): 1}
        assert await client.wait_closed() == 1000
        assert ws.handlers == []
