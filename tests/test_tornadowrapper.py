"""TornadoWrapper: handler registration, the application, listening (HTTP and HTTPS), loop and shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
import tornado.ioloop
import tornado.web
import trustme
import websockets

from tests.polling import wait_until
from tornado_websockets.testing import WebSocketTestClient, serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


class Hello(tornado.web.RequestHandler):
    def get(self, *args: str) -> None:
        self.write("hello " + self.request.path)


class CatchAll(tornado.web.RequestHandler):
    def get(self, *args: str) -> None:
        self.write("fallback")


@pytest.mark.parametrize("handlers", [None, "x", {"/a": Hello}, ("/a", Hello)[0]])
def test_add_handlers_needs_a_list_or_tuple(handlers: Any) -> None:
    with pytest.raises(TypeError, match="list or a tuple"):
        TornadoWrapper.add_handlers(handlers)


def test_add_handlers_accepts_tuple_and_list_and_returns_the_list() -> None:
    assert TornadoWrapper.add_handlers((("/a", Hello),)) == [("/a", Hello)]
    assert TornadoWrapper.add_handlers([("/b", Hello)]) == [("/a", Hello), ("/b", Hello)]


@pytest.mark.parametrize(("handlers", "settings"), [("x", None), (None, ["debug"]), ({"a": 1}, {})])
def test_start_app_checks_types(handlers: Any, settings: Any) -> None:
    with pytest.raises(TypeError):
        TornadoWrapper.start_app(handlers, settings)


@pytest.mark.parametrize("port", ["8000", 80.0, None, True])
def test_listen_needs_an_int_port(port: Any) -> None:
    TornadoWrapper.start_app()
    with pytest.raises(TypeError, match="tornado_port should be an int"):
        TornadoWrapper.listen(port)


def test_listen_before_start_app_names_the_fix() -> None:
    with pytest.raises(TypeError, match=r"start_app\(\) before listen\(\)"):
        TornadoWrapper.listen(0)


async def fetch(url: str, **kwargs: Any) -> str:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(url, **kwargs)
    return response.body.decode()


async def test_catch_all_stays_last_whatever_the_order() -> None:
    ws = WebSocket("/echo")

    @ws.on
    async def echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("echo", data)

    async with serve([(r".*", CatchAll), (r"/hello", Hello)]) as server:
        assert await fetch(server.http_url("/hello")) == "hello /hello"
        assert await fetch(server.http_url("/anything")) == "fallback"
        async with server.connect("/echo") as client:
            await client.emit("echo", {"ok": True})
            assert await client.wait_for("echo") == {"ok": True}
        # Registered while the app runs: added live, still ahead of the catch-all.
        late = WebSocket("/late")

        @late.on
        async def ping(socket: WebSocketHandler) -> None:
            socket.emit("pong")

        TornadoWrapper.add_handlers([(r"/added", Hello)])
        assert await fetch(server.http_url("/added")) == "hello /added"
        async with server.connect("/late") as client:
            await client.emit("ping")
            assert await client.wait_for("pong") == {}


async def test_https_and_wss_with_ssl_options(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    ws = WebSocket("/secure")

    @ws.on
    async def ping(socket: WebSocketHandler) -> None:
        socket.emit("pong", {"scheme": socket.request.protocol})

    TornadoWrapper.start_app([(r"/", Hello)])
    TornadoWrapper.listen(0, "127.0.0.1", ssl_options=server_context)
    port = TornadoWrapper.tornado_port
    try:
        async with websockets.connect(f"wss://127.0.0.1:{port}/ws/secure", ssl=client_context) as connection:
            await connection.send('{"event": "ping"}')
            assert json.loads(await asyncio.wait_for(connection.recv(), 5)) == {
                "event": "pong",
                "data": {"scheme": "https"},
            }
        ca_file = tmp_path / "ca.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        assert await fetch(f"https://127.0.0.1:{port}/", ca_certs=str(ca_file)) == "hello /"
    finally:
        await TornadoWrapper.shutdown()


def test_loop_runs_until_stop_from_another_thread() -> None:
    ws = WebSocket("/loop")
    received: list[dict[str, Any]] = []

    async def client_session(port: int) -> None:
        client = await WebSocketTestClient.connect(f"ws://127.0.0.1:{port}/ws/loop")
        while not ws.handlers:
            await asyncio.sleep(0.01)
        ws.emit("from_thread", {"n": 1})  # not the loop's thread: handed over
        received.append(await client.wait_for("from_thread"))
        client.close()

    def in_thread() -> None:
        asyncio.run(client_session(port))
        TornadoWrapper.stop()

    async def start() -> None:
        TornadoWrapper.start_app()
        TornadoWrapper.listen(0, "127.0.0.1")

    io_loop = tornado.ioloop.IOLoop(make_current=True)
    try:
        io_loop.run_sync(start)
        port = TornadoWrapper.tornado_port
        assert isinstance(port, int)
        thread = threading.Thread(target=in_thread)
        thread.start()
        TornadoWrapper.loop()  # returns once the thread calls stop()
        thread.join(5)
        io_loop.run_sync(TornadoWrapper.shutdown)
    finally:
        io_loop.close(all_fds=True)
    assert received == [{"n": 1}]


SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from tornado_websockets.tornadowrapper import TornadoWrapper
    from tornado_websockets.websocket import WebSocket

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    ws = WebSocket("/quick")

    @ws.on
    async def open(socket):
        socket.emit("ready")

    TornadoWrapper.run(int(sys.argv[1]), address="127.0.0.1")
    print("exited cleanly", flush=True)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_quick_starter_shuts_down_gracefully_on_signals(tmp_path: Path, signum: int) -> None:
    port = _free_port()
    process = _start_script(tmp_path / "quick.py", SCRIPT, port)
    try:
        client = await _connect_with_retry(f"ws://127.0.0.1:{port}/ws/quick")
        assert await client.wait_for("ready") == {}
        process.send_signal(signum)
        assert await client.wait_closed() == 1001
        output, _ = await asyncio.to_thread(process.communicate, timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert b"exited cleanly" in output


def _start_script(path: Path, source: str, *args: object) -> subprocess.Popen[bytes]:
    """Run ``source`` as a script with ``args``, as a user runs theirs; its output on stdout."""
    path.write_text(source)
    return subprocess.Popen(
        [sys.executable, str(path), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _connect_with_retry(url: str) -> WebSocketTestClient:
    for _ in range(200):
        try:
            return await WebSocketTestClient.connect(url, timeout=1)
        except (ConnectionError, OSError, tornado.httpclient.HTTPClientError):
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never accepted a connection")


async def test_shutdown_closes_connections_with_1001_and_keeps_registrations() -> None:
    ws = WebSocket("/bye")
    async with serve() as server:
        client = await server.connect("/bye")
        while not ws.handlers:
            await asyncio.sleep(0.01)
    assert await client.wait_closed() == 1001
    assert ws.handlers == []
    assert TornadoWrapper.tornado_app is None
    assert TornadoWrapper.handlers == [ws.handler_spec()]
    async with serve() as server, server.connect("/bye"):  # the same registrations serve again
        pass


async def test_shutdown_stops_accepting_and_lets_running_functions_finish() -> None:
    ws = WebSocket("/busy")
    release = asyncio.Event()
    finished: list[str] = []

    @ws.on
    async def work() -> None:
        await release.wait()
        finished.append("work")

    @ws.on
    def work_sync() -> None:
        time.sleep(0.3)
        finished.append("work_sync")

    async with serve() as server, server.connect("/busy") as one, server.connect("/busy") as two:
        await one.emit("work")
        await two.emit("work_sync")
        await wait_until(lambda: TornadoWrapper.in_flight == 2)
        shutdown = asyncio.create_task(TornadoWrapper.shutdown(grace=10))
        assert await one.wait_closed() == 1001
        assert await two.wait_closed() == 1001
        with pytest.raises(ConnectionRefusedError):  # no longer accepting: the listening socket is closed
            await server.connect("/busy", timeout=2)
        done, _ = await asyncio.wait({shutdown}, timeout=0.5)
        assert not done  # still waiting for "work", which is still running
        release.set()
        await asyncio.wait_for(shutdown, 5)
        assert sorted(finished) == ["work", "work_sync"]  # both ran to their end
        assert TornadoWrapper.in_flight == 0


async def test_shutdown_gives_up_on_a_hung_function_after_the_grace(caplog: pytest.LogCaptureFixture) -> None:
    ws = WebSocket("/hung")
    release = asyncio.Event()

    @ws.on
    async def hang() -> None:
        await release.wait()

    async with serve() as server, server.connect("/hung") as client:
        await client.emit("hang")
        await wait_until(lambda: TornadoWrapper.in_flight == 1)
        started = time.monotonic()
        await TornadoWrapper.shutdown(grace=0.3)
        assert 0.3 <= time.monotonic() - started < 3  # the grace, not the function, bounds it
        assert await client.wait_closed() == 1001
        assert "Shutting down with 1 event functions running" in caplog.text
        release.set()


def test_reset_forgets_everything() -> None:
    WebSocket("/gone")
    TornadoWrapper.start_app()
    TornadoWrapper.reset()
    assert (TornadoWrapper.handlers, TornadoWrapper.tornado_app, TornadoWrapper.tornado_port) == (
        [],
        None,
        None,
    )


HUNG_SCRIPT = textwrap.dedent(
    """
    import logging, sys, time
    from tornado_websockets.tornadowrapper import TornadoWrapper
    from tornado_websockets.websocket import WebSocket

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    ws = WebSocket("/hung")

    @ws.on
    def hang(socket):
        socket.emit("hanging")
        time.sleep(60)  # a blocking call that outlives any grace

    TornadoWrapper.run(int(sys.argv[1]), address="127.0.0.1")
    print("exited cleanly", flush=True)
    """
)


async def test_sigterm_with_a_hung_def_exits_within_the_grace(tmp_path: Path) -> None:
    from tornado_websockets.tornadowrapper import SHUTDOWN_GRACE

    port = _free_port()
    process = _start_script(tmp_path / "hung.py", HUNG_SCRIPT, port)
    try:
        client = await _connect_with_retry(f"ws://127.0.0.1:{port}/ws/hung")
        await client.emit("hang")
        assert await client.wait_for("hanging") == {}
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert await client.wait_closed() == 1001  # every socket closed first, as before
        output, _ = await asyncio.to_thread(process.communicate, timeout=SHUTDOWN_GRACE + 30)
        took = time.monotonic() - signalled
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert b"exited cleanly" in output
    # Bounded by the grace, not by the 60 s call (a generous margin: the machine is shared).
    assert took < SHUTDOWN_GRACE + 3, f"exited {took:.1f}s after SIGTERM"


def test_add_handler_of_the_original_api_still_works_with_a_deprecation_warning() -> None:
    spec = ("/old", tornado.web.RequestHandler)
    with pytest.warns(DeprecationWarning, match=r"add_handlers\(\[handler\]\)"):
        handlers = TornadoWrapper.add_handler(spec)
    assert handlers == [spec]


def test_app_of_the_original_api_is_tornado_app_with_a_deprecation_warning() -> None:
    app = TornadoWrapper.start_app()
    with pytest.warns(DeprecationWarning, match=r"TornadoWrapper\.tornado_app"):
        assert TornadoWrapper.app is app


async def test_server_of_the_original_api_is_tornado_server_with_a_deprecation_warning() -> None:
    TornadoWrapper.start_app()
    http_server = TornadoWrapper.listen(0, "127.0.0.1")
    try:
        with pytest.warns(DeprecationWarning, match=r"TornadoWrapper\.tornado_server"):
            assert TornadoWrapper.server is http_server
    finally:
        await TornadoWrapper.shutdown(grace=0.5)


BARE_SCRIPT = textwrap.dedent(
    """
    import sys
    from tornado_websockets.tornadowrapper import TornadoWrapper
    from tornado_websockets.websocket import WebSocket

    WebSocket("/bare")  # a script that configures no logging, as the quickstart's
    TornadoWrapper.run(int(sys.argv[1]), address=sys.argv[2])
    """
)


@pytest.mark.parametrize("address", ["", "127.0.0.1"])
async def test_quick_starter_says_where_it_listens(tmp_path: Path, address: str) -> None:
    port = _free_port()
    process = _start_script(tmp_path / "bare.py", BARE_SCRIPT, port, address)
    try:
        (await _connect_with_retry(f"ws://127.0.0.1:{port}/ws/bare")).close()
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=10)
    finally:
        process.kill()
    text = output.decode()
    assert f"Listening on http://{address or '0.0.0.0'}:{port}/" in text, text
    assert ("every interface" in text) is (address == "")
