"""WebSocketHandler over real sockets: dispatch, warnings, errors, ordering, open/close, unicast."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket
import websockets

from tornado_websockets.exceptions import InvalidInstanceError
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_sync_and_async_functions_receive_socket_and_data() -> None:
    ws = WebSocket("/echo")
    threads: dict[str, str] = {}

    @ws.on
    def sync_echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        threads["sync"] = threading.current_thread().name
        socket.emit("sync_echo", data)

    @ws.on
    async def async_echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        threads["async"] = threading.current_thread().name
        socket.emit("async_echo", data)

    async with serve() as server, server.connect("/echo") as client:
        await client.emit("sync_echo", {"n": 1})
        await client.emit("async_echo", {"n": 2})
        assert await client.wait_for("sync_echo") == {"n": 1}
        assert await client.wait_for("async_echo") == {"n": 2}
    assert threads["async"] == threading.current_thread().name
    assert threads["sync"].startswith("tornado-websockets")


async def test_functions_ask_only_for_what_they_need() -> None:
    ws = WebSocket("/args")
    seen: list[Any] = []

    @ws.on
    async def nothing() -> None:
        seen.append("nothing")

    @ws.on
    async def only_data(data: dict[str, Any]) -> None:
        seen.append(data)

    @ws.on
    async def kwargs(**everything: Any) -> None:
        seen.append(sorted(everything))
        everything["socket"].emit("done")

    async with serve() as server, server.connect("/args") as client:
        await client.emit("nothing", {"ignored": True})
        await client.emit("only_data")
        await client.emit("kwargs")
        await client.wait_for("done")
    assert seen == ["nothing", {}, ["data", "socket"]]


async def test_methods_get_self_from_context_and_bound_methods_work() -> None:
    ws = WebSocket("/methods")

    class Chat:
        def __init__(self) -> None:
            self.messages: list[str] = []
            ws.context = self

        @ws.on
        def message(self, socket: WebSocketHandler, data: dict[str, Any]) -> None:
            self.messages.append(data["text"])
            socket.emit("message", {"count": len(self.messages)})

    class Counter:
        def __init__(self) -> None:
            self.count = 0

        async def increment(self, socket: WebSocketHandler) -> None:
            self.count += 1
            socket.emit("count", {"count": self.count})

    chat = Chat()
    counter = Counter()
    ws.on(counter.increment)

    async with serve() as server, server.connect("/methods") as client:
        await client.emit("message", {"text": "hi"})
        assert await client.wait_for("message") == {"count": 1}
        await client.emit("increment")
        await client.emit("increment")
        assert await client.wait_for("count") == {"count": 1}
        assert await client.wait_for("count") == {"count": 2}
    assert chat.messages == ["hi"]


async def test_frames_of_one_connection_are_handled_in_order() -> None:
    ws = WebSocket("/order")
    handled: list[int] = []

    @ws.on
    def slow_sync(data: dict[str, Any]) -> None:
        time.sleep(0.02 if data["n"] % 2 else 0)
        handled.append(data["n"])

    @ws.on
    async def slow_async(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        await asyncio.sleep(0.02 if data["n"] % 2 else 0)
        handled.append(data["n"])
        if data["n"] == 19:
            socket.emit("finished")

    async with serve() as server, server.connect("/order") as client:
        for n in range(20):
            await client.emit("slow_sync" if n < 10 else "slow_async", {"n": n})
        await client.wait_for("finished")
    assert handled == list(range(20))


async def test_a_slow_sync_function_does_not_block_other_connections() -> None:
    ws = WebSocket("/slow")
    release = threading.Event()

    @ws.on
    def block(socket: WebSocketHandler) -> None:
        release.wait(5)

    @ws.on
    async def ping(socket: WebSocketHandler) -> None:
        socket.emit("pong")

    async with serve() as server, server.connect("/slow") as blocked, server.connect("/slow") as other:
        await blocked.emit("block")
        await other.emit("ping")
        await other.wait_for("pong", timeout=2)
        release.set()


@pytest.mark.parametrize(
    ("message", "warning"),
    [
        ("{not json", "Invalid JSON was sent."),
        ('{"data": {}}', "There is no event in this JSON."),
        ('{"event": "known", "data": "text"}', "The data should be a dictionary."),
        ('{"event": "known", "data": [1, 2]}', "The data should be a dictionary."),
        ("[1]", "The frame should be a JSON object."),
        ('{"event": 3}', "The event should be a string."),
        (b"\xff\xfe binary garbage", "Invalid JSON was sent."),
    ],
)
async def test_bad_frames_get_a_warning_and_the_connection_stays_usable(
    message: str | bytes, warning: str
) -> None:
    ws = WebSocket("/strict")

    @ws.on
    async def known(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("known", data)

    async with serve() as server, server.connect("/strict") as client:
        await client.send(message)
        frame = await client.receive()
        assert (frame.event, frame.data) == ("warning", {"message": warning})
        await client.emit("known", {"still": "open"})
        assert await client.wait_for("known") == {"still": "open"}


async def test_unbound_and_reserved_events_are_refused_by_name() -> None:
    ws = WebSocket("/strict")
    opened: list[int] = []

    @ws.on
    async def open() -> None:
        opened.append(1)

    async with serve() as server, server.connect("/strict") as client:
        await client.emit("missing")
        assert await client.wait_for("warning") == {
            "message": 'Event "missing" is not bound on "/strict".',
            "event": "missing",
        }
        await client.emit("open")
        assert (await client.wait_for("warning"))["event"] == "open"
        await client.emit("__init__")
        assert (await client.wait_for("warning"))["event"] == "__init__"
    assert opened == [1]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_exception_becomes_an_error_event_without_internals(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    ws = WebSocket("/boom")
    secret = "password=hunter2"

    def explode() -> None:
        raise RuntimeError(secret)

    async def explode_async() -> None:
        raise RuntimeError(secret)

    ws.on(explode if kind == "sync" else explode_async, name="explode")

    @ws.on
    async def ping(socket: WebSocketHandler) -> None:
        socket.emit("pong")

    with caplog.at_level(logging.ERROR, logger="tornado_websockets"):
        async with serve() as server, server.connect("/boom") as client:
            await client.emit("explode")
            frame = await client.receive()
            assert frame.event == "error"
            assert frame.data == {"message": 'The event "explode" failed on the server.', "event": "explode"}
            assert secret not in json.dumps(frame.data)
            await client.emit("ping")
            await client.wait_for("pong")
    assert secret in caplog.text
    assert "Traceback" in caplog.text


async def test_open_and_close_run_and_handlers_track_live_connections() -> None:
    ws = WebSocket("/life")
    events: list[str] = []
    closed = asyncio.Event()

    @ws.on
    def open(socket: WebSocketHandler) -> None:
        events.append("open")
        socket.emit("hello", {"connections": len(ws.handlers)})

    @ws.on
    async def close(socket: WebSocketHandler) -> None:
        events.append("close")
        assert socket.is_closed
        closed.set()

    async with serve() as server:
        client = await server.connect("/life")
        assert await client.wait_for("hello") == {"connections": 1}
        assert len(ws.handlers) == 1
        client.close()
        await asyncio.wait_for(closed.wait(), 5)
        assert ws.handlers == []
    assert events == ["open", "close"]


async def test_abrupt_disconnect_unlinks_the_connection() -> None:
    ws = WebSocket("/abrupt")
    async with serve() as server:
        client = await server.connect("/abrupt")
        await wait_until(lambda: len(ws.handlers) == 1)
        client.connection.stream.close()  # drop the TCP connection without a closing handshake
        await wait_until(lambda: ws.handlers == [])


async def test_socket_emit_on_a_closed_connection_raises() -> None:
    ws = WebSocket("/closed")
    async with serve() as server, server.connect("/closed") as client:
        await wait_until(lambda: len(ws.handlers) == 1)
        handler = ws.handlers[0]
        client.close()
        await wait_until(lambda: handler.is_closed)
        with pytest.raises(tornado.websocket.WebSocketClosedError):
            handler.emit("late")


async def test_socket_emit_from_another_thread() -> None:
    ws = WebSocket("/threaded")
    async with serve() as server, server.connect("/threaded") as client:
        await wait_until(lambda: len(ws.handlers) == 1)
        handler = ws.handlers[0]
        await asyncio.to_thread(handler.emit, "from_thread", "hi")
        assert await client.wait_for("from_thread") == {"message": "hi"}


async def test_socket_emit_checks_arguments() -> None:
    ws = WebSocket("/typed")
    async with serve() as server, server.connect("/typed"):
        await wait_until(lambda: len(ws.handlers) == 1)
        with pytest.raises(TypeError, match="Data should be"):
            ws.handlers[0].emit("x", 42)  # type: ignore[arg-type]


async def test_initialize_refuses_anything_but_a_websocket(caplog: pytest.LogCaptureFixture) -> None:
    async with serve([("/ws/bad", WebSocketHandler, {"websocket": "not a WebSocket"})]) as server:
        with pytest.raises(tornado.httpclient.HTTPClientError):
            await server.connect("/bad")
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info and r.exc_info[1]]
    assert any(isinstance(e, InvalidInstanceError) and e.actual_instance == "not a WebSocket" for e in errors)


async def test_independent_client_library_speaks_the_same_protocol() -> None:
    """The `websockets` package, not Tornado's client, proves wire compatibility."""
    ws = WebSocket("/compat")

    @ws.on(name="chat.message")
    async def chat_message(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        ws.emit("chat.message", {"echo": data["text"], "unicode": "☃"})

    async with serve() as server, websockets.connect(server.url("/compat")) as connection:
        await connection.send(json.dumps({"event": "chat.message", "data": {"text": "héllo"}}))
        reply = await asyncio.wait_for(connection.recv(), 5)
        assert isinstance(reply, str)  # a text frame, not binary
        assert json.loads(reply) == {"event": "chat.message", "data": {"echo": "héllo", "unicode": "☃"}}
        await connection.send(b"not json")
        assert json.loads(await asyncio.wait_for(connection.recv(), 5))["event"] == "warning"
