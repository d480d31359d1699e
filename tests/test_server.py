"""Servers started the way users start them: their own Application, Tornado's test case, a loop per test.

Every connection belongs to the loop that serves it, so none of these sees a leftover of another
server, loop or test (`tornado_websockets.server.Server`).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.testing
import tornado.web
import tornado.websocket

from tests.polling import wait_until
from tornado_websockets import PathAlreadyRegistered, Server
from tornado_websockets.testing import WebSocketTestClient
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket

# Made once, at import, as users make theirs: every test below serves this same object on a loop
# of its own (the conftest resets the default server's registry, not this WebSocket).
user_ws = WebSocket("/user-echo", add_to_handlers=False)


@user_ws.on
def echo(socket: Any, data: dict[str, Any]) -> None:
    socket.emit("echo", data)


@user_ws.on
def enter(socket: Any, data: dict[str, Any]) -> list[str]:
    socket.join(data["room"])
    return sorted(socket.rooms)


@user_ws.on
async def shout(socket: Any, data: dict[str, Any]) -> None:
    user_ws.emit("shouted", data)  # to every client of the path, from the live loop


@user_ws.on
def shout_from_thread(socket: Any, data: dict[str, Any]) -> None:
    user_ws.to(data["room"]).emit("shouted", data)


def _own_server(ws: WebSocket) -> tuple[tornado.httpserver.HTTPServer, int]:
    """A user's own Application and HTTPServer serving ``ws`` on a free loopback port."""
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(tornado.web.Application([ws.handler_spec()]))
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


async def _exercise(port: int) -> None:
    """What a user's test does: echo, join then read the rooms, and emits to the path and a room."""
    url = f"ws://127.0.0.1:{port}/ws/user-echo"
    async with await WebSocketTestClient.connect(url) as client:
        await client.emit("echo", {"n": 1})
        assert await client.wait_for("echo") == {"n": 1}
        assert await client.request("enter", {"room": "lobby"}) == ["lobby"]
        await client.emit("shout", {"n": 2})
        assert await client.wait_for("shouted") == {"n": 2}
        await client.emit("shout_from_thread", {"room": "lobby", "n": 3})
        assert await client.wait_for("shouted") == {"room": "lobby", "n": 3}
        assert not [frame for frame in client.buffered() if frame.event == "error"]


class TestTornadoAsyncHTTPTestCase(tornado.testing.AsyncHTTPTestCase):
    """Tornado's own test case: a new IOLoop for every test method, the same WebSocket object."""

    def get_app(self) -> tornado.web.Application:
        return tornado.web.Application([user_ws.handler_spec()])

    @tornado.testing.gen_test
    async def test_first(self) -> None:
        await _exercise(self.get_http_port())

    @tornado.testing.gen_test
    async def test_second_on_a_new_loop(self) -> None:
        await _exercise(self.get_http_port())

    @tornado.testing.gen_test
    async def test_third_on_yet_another_loop(self) -> None:
        await _exercise(self.get_http_port())


async def _own_application() -> None:
    """A user's own Application and HTTPServer on whatever loop runs this."""
    server, port = _own_server(user_ws)
    try:
        await _exercise(port)
    finally:
        server.stop()
        await server.close_all_connections()


@pytest.mark.parametrize("run", [1, 2, 3])
async def test_pytest_asyncio_gives_each_test_a_loop_of_its_own(run: int) -> None:
    await _own_application()
    await wait_until(lambda: not user_ws.handlers)


def test_two_servers_one_after_the_other_in_one_process() -> None:
    # Each asyncio.run() makes a loop and closes it; the second server must not be refused because
    # the first loop is remembered somewhere.
    asyncio.run(_own_application())
    asyncio.run(_own_application())


def test_the_wrapper_serves_again_after_its_first_loop_ended() -> None:
    async def wrapper_server() -> None:
        TornadoWrapper.add_handlers([user_ws.handler_spec()])
        TornadoWrapper.start_app()
        TornadoWrapper.listen(0, "127.0.0.1")
        assert TornadoWrapper.tornado_port is not None
        try:
            await _exercise(TornadoWrapper.tornado_port)
        finally:
            await TornadoWrapper.shutdown(grace=1.0)
            TornadoWrapper.reset()

    asyncio.run(wrapper_server())
    asyncio.run(wrapper_server())


def test_connections_of_a_loop_closed_without_closing_them_are_forgotten() -> None:
    ws = WebSocket("/abandoned", add_to_handlers=False)

    async def connect() -> None:
        server, port = _own_server(ws)
        await WebSocketTestClient.connect(f"ws://127.0.0.1:{port}/ws/abandoned")
        await wait_until(lambda: len(ws.handlers) == 1)
        server.stop()

    # As IOLoop.close() does in Tornado's test case: the loop is closed with the connection still
    # open and its tasks pending, so no on_close ever runs for it.
    loop = asyncio.new_event_loop()
    loop.run_until_complete(connect())
    loop.close()
    assert len(ws.handlers) == 1
    assert ws.handlers[0].loop.is_closed()
    asyncio.run(_serve_once(ws))  # a connection on a new loop: the abandoned one is forgotten
    assert ws.handlers == []


async def _serve_once(ws: WebSocket) -> None:
    server, port = _own_server(ws)
    client = await WebSocketTestClient.connect(f"ws://127.0.0.1:{port}/ws{ws.path}")
    await wait_until(lambda: len(ws.handlers) == 1)
    client.close()
    await wait_until(lambda: not ws.handlers)
    server.stop()


def test_emit_from_another_thread_reaches_clients_of_a_users_own_loop() -> None:
    ws = WebSocket("/from-thread", add_to_handlers=False)

    async def main() -> None:
        server, port = _own_server(ws)
        url = f"ws://127.0.0.1:{port}/ws/from-thread"
        async with await WebSocketTestClient.connect(url) as client:
            await wait_until(lambda: len(ws.handlers) == 1)
            thread = threading.Thread(target=ws.emit, args=("news", {"n": 1}))
            thread.start()
            assert await client.wait_for("news") == {"n": 1}
            thread.join()
        server.stop()

    asyncio.run(main())


def test_a_second_websocket_for_a_served_path_raises_naming_the_path() -> None:
    WebSocket("/twice")
    with pytest.raises(PathAlreadyRegistered) as caught:
        WebSocket("/twice")
    assert caught.value.path == "/twice"
    assert "replace=True" in str(caught.value)
    assert len(TornadoWrapper.handlers) == 1  # the refused one added no route either


async def test_replace_true_replaces_the_route_and_the_deliveries() -> None:
    first = WebSocket("/replaced")

    @first.on
    async def hello(socket: Any) -> str:
        return "first"

    second = WebSocket("/replaced", replace=True)

    @second.on
    async def hello(socket: Any) -> str:  # noqa: F811 - the replacement's own function
        return "second"

    assert TornadoWrapper.websockets["/replaced"] is second
    assert [spec[2]["websocket"] for spec in TornadoWrapper.handlers] == [second]
    from tornado_websockets.testing import serve

    async with serve() as server, server.connect("/replaced") as client:
        assert await client.request("hello") == "second"
        second.emit("news")  # the path's emits reach the clients of the WebSocket that serves it
        assert await client.wait_for("news") == {}


def test_independent_servers_keep_their_own_paths_and_brokers() -> None:
    one, two = Server(), Server()
    WebSocket("/same", server=one)
    WebSocket("/same", server=two)  # no conflict: another server
    assert one.websockets["/same"] is not two.websockets["/same"]
    assert one.broker is not two.broker
    assert TornadoWrapper.websockets == {}  # the default server saw neither


def test_the_wrapper_is_a_facade_over_its_default_server() -> None:
    TornadoWrapper.max_workers = 3
    assert TornadoWrapper.runtime.max_workers == 3
    TornadoWrapper.runtime.in_flight = 2
    assert TornadoWrapper.in_flight == 2
    TornadoWrapper.runtime.in_flight = 0
    TornadoWrapper.max_workers = 16
