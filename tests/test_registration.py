"""The seed's registration contract: `WebSocket(path)` registers through `TornadoWrapper.add_handlers`,
and a path is claimed exactly as long as a handler spec serves it, however the specs are reset.

Users' test suites written for the original library reset the wrapper by assigning its
attributes, or build their WebSockets in each test; both are run here as users run them.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import unittest
from pathlib import Path
from typing import Any, cast

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

from tornado_websockets import PathAlreadyRegistered, Server, protocol
from tornado_websockets.broker import Envelope
from tornado_websockets.testing import WebSocketTestClient, serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

ROOT = Path(__file__).resolve().parent.parent


def _own_server(ws: WebSocket) -> tuple[tornado.httpserver.HTTPServer, int]:
    """A user's own Application mounting ``ws.handler_spec()`` on a free loopback port."""
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(tornado.web.Application([ws.handler_spec()]))
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


# The seed's path: every registration goes through TornadoWrapper.add_handlers ------------------


def test_websocket_registers_its_spec_through_tornadowrapper_add_handlers(monkeypatch: Any) -> None:
    seen: list[list[Any]] = []
    original = TornadoWrapper.add_handlers

    def wrapped(handlers: list[Any]) -> list[Any]:  # a user's wrapper that passes the call on
        seen.append(list(handlers))
        return original(handlers)

    monkeypatch.setattr(TornadoWrapper, "add_handlers", wrapped)
    ws = WebSocket("/echo")
    assert seen == [[("/ws/echo", WebSocketHandler, {"websocket": ws})]]
    assert TornadoWrapper.handlers == [("/ws/echo", WebSocketHandler, {"websocket": ws})]
    own = Server()
    elsewhere = WebSocket("/echo", server=own)  # another server's path does not go through the facade
    assert len(seen) == 1
    assert own.handlers == [elsewhere.handler_spec()]


def test_register_websocket_serves_a_websocket_made_without_handlers(monkeypatch: Any) -> None:
    seen: list[list[Any]] = []
    original = TornadoWrapper.add_handlers
    monkeypatch.setattr(
        TornadoWrapper, "add_handlers", lambda handlers: seen.append(handlers) or original(handlers)
    )
    ws = WebSocket("/late", add_to_handlers=False)
    TornadoWrapper.register_websocket(ws)
    TornadoWrapper.register_websocket(ws)  # served already: nothing more
    assert seen == [[ws.handler_spec()]]
    assert TornadoWrapper.handlers == [ws.handler_spec()]
    replacement = WebSocket("/late", add_to_handlers=False)
    with pytest.raises(PathAlreadyRegistered):
        TornadoWrapper.register_websocket(replacement)
    TornadoWrapper.register_websocket(replacement, replace=True)
    assert TornadoWrapper.handlers == [replacement.handler_spec()]


def test_websockets_made_while_add_handlers_is_replaced_claim_nothing(monkeypatch: Any) -> None:
    # The original project's own tests replace TornadoWrapper.add_handler(s) and then make
    # WebSocket("path") in test after test: what the replacement did not register is not claimed.
    calls: list[Any] = []
    monkeypatch.setattr(TornadoWrapper, "add_handlers", calls.append)
    first = WebSocket("path")
    second = WebSocket("path")
    assert calls == [[first.handler_spec()], [second.handler_spec()]]
    assert TornadoWrapper.handlers == []
    assert TornadoWrapper.websockets == {}


# One source of truth: the handler specs -------------------------------------------------------


def test_the_paths_follow_the_handler_specs_however_they_are_changed() -> None:
    ws = WebSocket("/echo")
    assert dict(TornadoWrapper.websockets) == {"/echo": ws}
    TornadoWrapper.handlers = []  # the original project's reset
    assert TornadoWrapper.websockets == {}
    again = WebSocket("/echo")  # the path is free again
    TornadoWrapper.handlers.remove(again.handler_spec())  # changed in place: free again too
    assert TornadoWrapper.websockets == {}
    TornadoWrapper.handlers = [ws.handler_spec()]  # assigning a spec claims its path
    assert TornadoWrapper.websockets["/echo"] is ws
    with pytest.raises(PathAlreadyRegistered):
        WebSocket("/echo")


def test_assigning_websockets_changes_the_handler_specs() -> None:
    WebSocket("/a")
    b = WebSocket("/b")
    TornadoWrapper.websockets = {"/b": b}
    assert TornadoWrapper.handlers == [b.handler_spec()]
    WebSocket("/a")  # free again
    TornadoWrapper.websockets = {}
    assert TornadoWrapper.handlers == []
    with pytest.raises(ValueError, match="'/c' is served by"):
        TornadoWrapper.websockets = {"/c": b}
    with pytest.raises(TypeError):  # a read-only view: assign the attribute instead
        cast(Any, TornadoWrapper.websockets)["/b"] = b


def test_two_live_registrations_of_one_path_raise_wherever_they_come_from() -> None:
    first = WebSocket("/twice")
    other = WebSocket("/twice", add_to_handlers=False)  # claims nothing: the user mounts it
    with pytest.raises(PathAlreadyRegistered) as caught:
        TornadoWrapper.add_handlers([("/x", tornado.web.RequestHandler), other.handler_spec()])
    assert caught.value.path == "/twice"
    assert TornadoWrapper.handlers == [first.handler_spec()]  # nothing of the refused call added
    with pytest.raises(PathAlreadyRegistered):
        TornadoWrapper.handlers = [first.handler_spec(), other.handler_spec()]  # assigned, the same


# add_to_handlers=False, then True, for one path -----------------------------------------------


async def test_add_to_handlers_false_then_true_for_one_path_both_serve() -> None:
    mounted = WebSocket("/shared", add_to_handlers=False)
    served = WebSocket("/shared")  # the mounted one claimed nothing here

    @mounted.on
    def who() -> str:
        return "mounted"

    @served.on(name="who")
    def served_who() -> str:
        return "served"

    assert TornadoWrapper.handlers == [served.handler_spec()]
    assert TornadoWrapper.websockets["/shared"] is served
    own, port = _own_server(mounted)
    try:
        async with (
            serve() as server,
            server.connect("/shared") as client,
            await WebSocketTestClient.connect(f"ws://127.0.0.1:{port}/ws/shared") as own_client,
        ):
            assert await client.request("who") == "served"
            assert await own_client.request("who") == "mounted"
    finally:
        own.stop()


async def test_a_websocket_mounted_by_hand_still_gets_the_backplanes_deliveries() -> None:
    mounted = WebSocket("/manual", add_to_handlers=False)
    assert TornadoWrapper.handlers == []
    WebSocket("/manual")  # claimed nothing: a served one may take the path
    TornadoWrapper.handlers = []
    own, port = _own_server(mounted)
    try:
        async with await WebSocketTestClient.connect(f"ws://127.0.0.1:{port}/ws/manual") as client:
            # As an emit from another process arrives: the mounted WebSocket's clients get it.
            TornadoWrapper.deliver_envelope(Envelope("/manual", protocol.encode_emit("news", {"n": 1})))
            assert await client.wait_for("news") == {"n": 1}
            assert TornadoWrapper.websockets["/manual"] is mounted
    finally:
        own.stop()


# A WebSocket made in each test, as users' suites do ---------------------------------------------


class _SeedStyleTestCase(unittest.IsolatedAsyncioTestCase):
    """A user's TestCase: WebSocket("/echo") in setUp, the original project's reset in tearDown."""

    __test__ = False  # run below, by unittest, as the user's runner would

    def setUp(self) -> None:
        ws = WebSocket("/echo")
        name = self._testMethodName

        @ws.on
        def echo() -> str:
            return name

    def tearDown(self) -> None:
        TornadoWrapper.handlers = []
        TornadoWrapper.tornado_app = None
        TornadoWrapper.tornado_server = None

    async def _echo(self) -> None:
        async with serve() as server, server.connect("/echo") as client:
            assert await client.request("echo") == self._testMethodName

    async def test_one(self) -> None:
        await self._echo()

    async def test_two(self) -> None:
        await self._echo()


def test_a_websocket_in_setup_with_the_original_projects_reset_in_teardown() -> None:
    output = io.StringIO()
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(_SeedStyleTestCase)
    outcome = unittest.TextTestRunner(stream=output, verbosity=2).run(suite)
    assert outcome.testsRun == 2
    assert outcome.wasSuccessful(), output.getvalue()


USERS_SUITE = """
import pytest
from tornado_websockets import TornadoWrapper, WebSocket, serve

lobby = WebSocket("/lobby")  # made at import: kept for every test


@lobby.on
def hello():
    return "lobby"


@pytest.fixture(autouse=True)
def free_the_paths_of_each_test():  # as docs/testing.rst shows it
    handlers = list(TornadoWrapper.handlers)
    yield
    TornadoWrapper.handlers = handlers


@pytest.mark.parametrize("run", [1, 2, 3])
async def test_echo(run):
    ws = WebSocket("/echo")

    @ws.on
    def echo():
        return run

    async with serve() as server:
        async with server.connect("/echo") as client:
            assert await client.request("echo") == run
        async with server.connect("/lobby") as client:
            assert await client.request("hello") == "lobby"
"""


def test_a_users_pytest_suite_making_its_websocket_in_each_test(tmp_path: Path) -> None:
    (tmp_path / "test_users_suite.py").write_text(textwrap.dedent(USERS_SUITE))
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django"]
    done = subprocess.run(
        [*command, "test_users_suite.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def test_routes_and_connections_are_the_names_with_one_meaning() -> None:
    """``Server.routes`` is ``handlers`` (route specs); ``WebSocket.connections`` is ``handlers``
    (live connections): one word per meaning, the seed's names kept."""
    server = Server()
    ws = WebSocket("/named", server=server)
    assert server.routes is server.handlers
    assert [spec[0] for spec in server.routes] == ["/ws/named"]
    server.routes = []
    assert server.websocket_for("/named") is None
    assert ws.connections is ws.handlers
