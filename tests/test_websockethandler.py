"""WebSocketHandler over real sockets: dispatch, warnings, errors, ordering, open/close, unicast."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from typing import Any

import pytest
import tornado.httpclient
import tornado.testing
import tornado.web
import tornado.websocket
import websockets

from tests.polling import wait_until
from tornado_websockets import delivery
from tornado_websockets.exceptions import ConnectionDenied, EventError, InvalidInstanceError
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import CONNECT_HOOK_SETTING, WebSocketHandler


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


async def test_async_functions_that_suspend_or_raise_late_keep_the_connection_in_order() -> None:
    ws = WebSocket("/late")
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    handled: list[str] = []

    @ws.on
    async def wait(socket: WebSocketHandler) -> None:
        await gate  # suspends on a real future: the rest runs in a Task
        handled.append("wait")
        socket.emit("waited")

    @ws.on
    async def fail_late() -> None:
        await asyncio.sleep(0)
        raise EventError("late failure")

    @ws.on
    async def inline(socket: WebSocketHandler) -> None:  # never suspends: runs within on_message
        handled.append("inline")
        socket.emit("inlined")

    async with serve() as server, server.connect("/late") as client:
        await client.emit("wait")
        await client.emit("inline")
        await client.emit("fail_late")
        await client.emit("inline")
        await asyncio.sleep(0.05)
        assert handled == []  # the next frames wait for the suspended one
        gate.set_result(None)
        assert await client.wait_for("waited") == {}
        assert await client.wait_for("inlined") == {}
        assert (await client.wait_for("error"))["message"] == "late failure"
        assert await client.wait_for("inlined") == {}
    assert handled == ["wait", "inline", "inline"]


class _CompressingHandler(WebSocketHandler):
    def get_compression_options(self) -> dict[str, Any]:
        return {}  # permessage-deflate with Tornado's defaults


async def test_frames_are_still_compressed_when_permessage_deflate_is_negotiated() -> None:
    ws = WebSocket("/deflate", add_to_handlers=False)

    @ws.on
    async def echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("echo", data)

    async with serve([("/ws/deflate", _CompressingHandler, {"websocket": ws})]) as server:
        connection = await tornado.websocket.websocket_connect(server.url("/deflate"), compression_options={})
        try:
            text = "compressible " * 200
            await connection.write_message(json.dumps({"event": "echo", "data": {"text": text}}))
            reply = json.loads(await connection.read_message() or "")
            assert reply == {"event": "echo", "data": {"text": text}}
            handler = ws.handlers[0]
            # Written through Tornado's compressing path: far fewer bytes than the frame.
            assert handler.ws_connection is not None
            assert handler.ws_connection._compressor is not None  # type: ignore[attr-defined]
            assert handler.ws_connection.stream._total_write_done_index < len(text)  # type: ignore[attr-defined]
        finally:
            connection.close()


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


async def test_hanging_slow_and_raising_functions_never_hold_up_other_connections() -> None:
    ws = WebSocket("/faults")
    release_async = asyncio.Event()
    release_sync = threading.Event()
    running: list[str] = []

    @ws.on
    async def hang(socket: WebSocketHandler) -> None:
        running.append("hang")
        await release_async.wait()  # an await that never ends, until the test says so
        socket.emit("hang_done")

    @ws.on
    def hang_sync(socket: WebSocketHandler) -> None:
        running.append("hang_sync")
        release_sync.wait(10)  # a blocked worker thread
        socket.emit("hang_sync_done")

    @ws.on
    def crash() -> None:
        raise RuntimeError("a bug")

    @ws.on
    async def ping(socket: WebSocketHandler) -> None:
        socket.emit("pong")

    @ws.on
    def ping_sync(socket: WebSocketHandler) -> None:  # needs a worker thread of its own
        socket.emit("pong_sync")

    async with (
        serve() as server,
        server.connect("/faults") as hanging,
        server.connect("/faults") as blocking,
        server.connect("/faults") as crashing,
        server.connect("/faults") as other,
    ):
        await hanging.emit("hang")
        await blocking.emit("hang_sync")
        await wait_until(lambda: sorted(running) == ["hang", "hang_sync"])
        await hanging.emit("ping")  # waits behind the hanging frame of its own connection only
        for _ in range(3):
            await crashing.emit("crash")
            assert (await crashing.wait_for("error"))["event"] == "crash"
            await other.emit("ping")
            assert await other.wait_for("pong", timeout=2) == {}
            await other.emit("ping_sync")
            assert await other.wait_for("pong_sync", timeout=2) == {}
        for stuck in (hanging, blocking):
            with pytest.raises(TimeoutError):  # nothing yet: their frames are still running
                await stuck.receive(timeout=0.1)
        assert len(ws.handlers) == 4  # nobody was closed: not the hanging, not the crashing one
        release_async.set()
        release_sync.set()
        assert await hanging.wait_for("hang_done") == {}
        assert await hanging.wait_for("pong") == {}  # its queued frame ran once the hang ended
        assert await blocking.wait_for("hang_sync_done") == {}


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


async def test_socket_emit_on_a_closed_connection_counts_a_drop() -> None:
    ws = WebSocket("/closed")
    delivery.reset_drops()
    async with serve() as server, server.connect("/closed") as client:
        await wait_until(lambda: len(ws.handlers) == 1)
        handler = ws.handlers[0]
        client.close()
        await wait_until(lambda: handler.is_closed)
        handler.emit("late")  # the client left: not an error of the caller's
        assert delivery.dropped() == {(delivery.CONNECTION_CLOSED, "/closed"): 1}


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


async def test_requests_with_an_id_get_the_return_value_as_reply() -> None:
    ws = WebSocket("/rpc")

    @ws.on
    def add(data: dict[str, Any]) -> int:
        return int(data["a"]) + int(data["b"])

    @ws.on
    async def echo_list(data: dict[str, Any]) -> list[Any]:
        return [data, "x"]

    @ws.on
    async def nothing() -> None:
        return None

    async with serve() as server, server.connect("/rpc") as client:
        assert await client.request("add", {"a": 2, "b": 3}) == 5
        assert await client.request("echo_list", "hi") == [{"message": "hi"}, "x"]
        assert await client.request("nothing") is None
        await client.emit("add", {"a": 1, "b": 1})  # without an id: no reply, exactly as before
        await client.send('{"event": "add", "data": {"a": 1, "b": 2}, "id": "abc"}')
        frame = await client.receive()
        assert (frame.event, frame.id, frame.data, frame.error) == ("ack", "abc", 3, None)


async def test_failed_requests_get_an_error_reply_tied_to_their_id() -> None:
    ws = WebSocket("/rpc")

    @ws.on
    async def refuse() -> None:
        raise EventError("The room is full.")

    @ws.on
    def crash() -> None:
        raise KeyError("internal detail")

    @ws.on
    async def unencodable() -> object:
        return object()

    async with serve() as server, server.connect("/rpc") as client:
        with pytest.raises(EventError, match=r"The room is full\."):
            await client.request("refuse")
        with pytest.raises(EventError, match=r'The event "crash" failed on the server\.'):
            await client.request("crash")
        with pytest.raises(EventError, match='The event "unencodable" failed'):
            await client.request("unencodable")
        with pytest.raises(EventError, match='Event "missing" is not bound'):
            await client.request("missing")
        assert (await client.wait_for("warning"))["event"] == "missing"
        await client.send('{"event": "refuse", "data": 5, "id": 9}')
        assert (await client.wait_for("warning"))["message"] == "The data should be a dictionary."
        frame = await client.receive()
        assert (frame.event, frame.id, frame.error) == (
            "ack",
            9,
            {"message": "The data should be a dictionary."},
        )
        await client.send('{"event": "refuse", "id": [1]}')
        assert "id should be" in (await client.wait_for("warning"))["message"]


async def test_event_error_without_id_is_an_error_event_with_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ws = WebSocket("/rpc")

    @ws.on
    async def refuse() -> None:
        raise EventError("Not now.")

    async with serve() as server, server.connect("/rpc") as client:
        await client.emit("refuse")
        assert await client.wait_for("error") == {"message": "Not now.", "event": "refuse"}
    assert "Not now." not in caplog.text  # a refusal is not a server fault


async def test_guards_refuse_before_the_upgrade() -> None:
    ws = WebSocket("/private/<int:id>")
    seen: list[Any] = []

    @ws.guard
    def only_with_token(socket: WebSocketHandler) -> bool:
        seen.append(socket.path_params)
        return socket.request.headers.get("X-Token") == "secret"

    @ws.guard
    async def not_seven(socket: WebSocketHandler) -> None:
        if socket.path_params["id"] == 7:
            raise ConnectionDenied(451, "Unavailable For Legal Reasons")

    @ws.on
    async def open(socket: WebSocketHandler) -> None:
        socket.emit("welcome")

    async with serve() as server:
        with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
            await server.connect("/private/1")
        assert caught.value.code == 403
        with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
            await server.connect("/private/7", headers={"X-Token": "secret"})
        assert caught.value.code == 451
        assert ws.handlers == []
        async with server.connect("/private/2", headers={"X-Token": "secret"}) as client:
            assert await client.wait_for("welcome") == {}
    assert seen == [{"id": 1}, {"id": 7}, {"id": 2}]


async def test_connect_hook_from_application_settings_runs_before_guards() -> None:
    ws = WebSocket("/hooked")
    order: list[str] = []

    async def hook(socket: WebSocketHandler) -> None:
        order.append("hook")
        socket.user_id = socket.request.headers.get("X-User")

    @ws.guard
    async def known_users_only(socket: WebSocketHandler) -> bool:
        order.append("guard")
        return socket.user_id is not None

    async with serve(tornado_settings={CONNECT_HOOK_SETTING: hook}) as server:
        with pytest.raises(tornado.httpclient.HTTPClientError):
            await server.connect("/hooked")
        async with server.connect("/hooked", headers={"X-User": "ann"}):
            pass
    assert order == ["hook", "guard", "hook", "guard"]


async def test_connection_user_and_path_state() -> None:
    ws = WebSocket("/state")
    ws.state.total = 0

    async def identify(socket: WebSocketHandler) -> None:
        socket.user_id = socket.request.headers.get("X-User")

    @ws.on
    async def count(socket: WebSocketHandler) -> dict[str, int]:
        socket.state.mine = getattr(socket.state, "mine", 0) + 1
        socket.user_state.theirs = getattr(socket.user_state, "theirs", 0) + 1
        ws.state.total += 1
        return {"mine": socket.state.mine, "user": socket.user_state.theirs, "total": ws.state.total}

    async with serve(tornado_settings={CONNECT_HOOK_SETTING: identify}) as server:
        ann1 = await server.connect("/state", headers={"X-User": "ann"})
        ann2 = await server.connect("/state", headers={"X-User": "ann"})
        bob = await server.connect("/state", headers={"X-User": "bob"})
        assert await ann1.request("count") == {"mine": 1, "user": 1, "total": 1}
        assert await ann2.request("count") == {"mine": 1, "user": 2, "total": 2}
        assert await bob.request("count") == {"mine": 1, "user": 1, "total": 3}
        assert await ann1.request("count") == {"mine": 2, "user": 3, "total": 4}
        assert set(ws.users) == {"ann", "bob"}
        ann1.close()
        await wait_until(lambda: len(ws.handlers) == 2)
        assert set(ws.users) == {"ann", "bob"}  # ann still has a connection
        ann2.close()
        bob.close()
        await wait_until(lambda: ws.handlers == [])
        assert ws.users == ()  # per-user state goes with the user's last connection
        anonymous = await server.connect("/state")
        with pytest.raises(EventError, match="failed"):
            await anonymous.request("count")  # user_state needs a known user
        anonymous.close()


async def test_the_clients_liveness_ping_is_answered_with_pong_where_no_ping_is_bound() -> None:
    quiet = WebSocket("/quiet")
    own = WebSocket("/own-ping")

    @own.on
    async def ping(socket: Any) -> None:
        socket.emit("my_pong")

    async with serve() as server, server.connect("/quiet") as client, server.connect("/own-ping") as mine:
        await client.emit("ping")
        assert await client.wait_for("pong") == {}
        assert client.buffered() == []  # no warning: the probe is not an unknown event
        assert quiet.metrics.handler_errors == 0
        await mine.emit("ping")
        assert await mine.wait_for("my_pong") == {}  # a path's own ping function wins


# No Nagle delay (issue 22 item 2) --------------------------------------------------------------


def posting_app(path: str) -> WebSocket:
    """docs/events.rst's "posted, receipt, ack": an emit, then the reply."""
    ws = WebSocket(path)

    @ws.on
    async def post(socket: WebSocketHandler, data: dict[str, Any]) -> dict[str, bool]:
        socket.emit("receipt", data)
        return {"ok": True}

    return ws


async def emit_then_reply_ms(url: str, rounds: int = 30) -> list[float]:
    """Round trips of a request whose function emits, then replies, in milliseconds."""
    times = []
    async with websockets.connect(url) as client:
        for n in range(rounds):
            started = time.perf_counter()
            await client.send(json.dumps({"event": "post", "data": {"n": n}, "id": n}))
            while json.loads(await client.recv())["event"] != "ack":
                pass
            times.append(1000 * (time.perf_counter() - started))
    return sorted(times)


def nodelay(handler: WebSocketHandler) -> int:
    assert handler.ws_connection is not None
    sock = handler.ws_connection.stream.socket  # type: ignore[attr-defined]
    return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


async def test_the_server_side_of_a_connection_sets_tcp_nodelay() -> None:
    ws = posting_app("/nodelay")
    async with serve() as server:
        async with server.connect("/nodelay"):
            await wait_until(lambda: len(ws.handlers) == 1)
            assert nodelay(ws.handlers[0]) == 1
        times = await emit_then_reply_ms(server.url("/nodelay"))
    print(  # noqa: T201 - a figure the issue asks to see
        f"\nemit then reply: p50 {times[len(times) // 2]:.2f} ms, max {times[-1]:.2f} ms over {len(times)}"
    )


class NoDelayTestCase(tornado.testing.AsyncHTTPTestCase):
    """Tornado's own test case serving a user's Application: the option is set there too."""

    def get_app(self) -> tornado.web.Application:
        self.ws = posting_app("/case-nodelay")
        return tornado.web.Application([self.ws.handler_spec()])

    @tornado.testing.gen_test
    async def test_nodelay_and_emit_then_reply_latency(self) -> None:
        times = await emit_then_reply_ms(f"ws://127.0.0.1:{self.get_http_port()}/ws/case-nodelay", 10)
        print(  # noqa: T201 - a figure the issue asks to see
            f"\nemit then reply (AsyncHTTPTestCase): p50 {times[len(times) // 2]:.2f} ms"
        )
        async with websockets.connect(f"ws://127.0.0.1:{self.get_http_port()}/ws/case-nodelay"):
            await wait_until(lambda: len(self.ws.handlers) == 1)
            assert nodelay(self.ws.handlers[0]) == 1
