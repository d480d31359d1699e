"""Connections owned after the upgrade: the switch, the handover, the writer, and what stays on Tornado.

The rest of what a connection does on this path (order, limits, close codes, pings, the RFC 6455
cases) is pinned by the connection tests, which run on it by default and on Tornado's stream too:
``reader_settings`` and ``connection_path`` (tests/conftest.py), or the whole suite with
``TW_OWN_CONNECTION=0``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import pytest
import tornado.websocket
import websockets

from tests.conftest import SHIPPED_OWN_CONNECTION_DEFAULT
from tests.polling import wait_until
from tests.rawclient import RawClient
from tests.wsframes import client_frame
from tornado_websockets import framereader, ownconnection, wire
from tornado_websockets.framereader import FRAME_READER_SETTING, BulkFrameProtocol
from tornado_websockets.ownconnection import OWN_CONNECTION_SETTING, OwnedFrameProtocol, TransportStream
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

TIMEOUT = 10
OWNED = {OWN_CONNECTION_SETTING: True}


def echo_app(path: str = "/own") -> WebSocket:
    ws = WebSocket(path)

    @ws.on
    async def echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("echo", data)

    return ws


async def owned_clients(port: int, ws: WebSocket, count: int) -> list[RawClient]:
    """``count`` clients of ``ws`` (at "/own"), once each of their connections is owned."""
    clients = [await RawClient.connect(port, "/own") for _ in range(count)]
    await wait_until(lambda: len(ws.handlers) == count)
    await wait_until(
        lambda: all(isinstance(h.ws_connection.stream, TransportStream) for h in ws.handlers)  # type: ignore[union-attr]
    )
    return clients


async def test_the_setting_serves_a_connection_on_a_transport_after_the_upgrade() -> None:
    ws = echo_app()
    async with serve(tornado_settings=OWNED) as server, server.connect("/own") as client:
        await client.emit("echo", {"n": 1})
        assert (await client.receive()).data == {"n": 1}
        handler = ws.handlers[0]
        assert isinstance(handler.ws_connection, OwnedFrameProtocol)
        assert isinstance(handler.ws_connection.stream, TransportStream)
        assert handler.backlog == 0


@pytest.mark.parametrize(
    ("settings", "owned"),
    [
        ({}, SHIPPED_OWN_CONNECTION_DEFAULT),
        ({OWN_CONNECTION_SETTING: False}, False),
        ({OWN_CONNECTION_SETTING: True}, True),
        ({OWN_CONNECTION_SETTING: True, FRAME_READER_SETTING: False}, False),
    ],
    ids=["default", "off", "on", "on-without-the-bulk-reader"],
)
async def test_the_default_and_the_switches(
    settings: dict[str, Any], owned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ownconnection, "OWN_CONNECTION_DEFAULT", SHIPPED_OWN_CONNECTION_DEFAULT)
    ws = echo_app()
    async with serve(tornado_settings=settings) as server, server.connect("/own") as client:
        await client.emit("echo", {"n": 1})
        assert (await client.receive()).data == {"n": 1}
        connection = ws.handlers[0].ws_connection
        assert connection is not None
        assert isinstance(connection.stream, TransportStream) is owned


def test_the_released_default() -> None:
    assert SHIPPED_OWN_CONNECTION_DEFAULT is True


async def test_permessage_deflate_stays_on_tornados_reader() -> None:
    ws = echo_app()

    class Compressing(WebSocketHandler):
        def get_compression_options(self) -> dict[str, Any]:
            return {}

    async with (
        serve(tornado_settings=OWNED, tornado_handlers=[(r"/deflate", Compressing, {"websocket": ws})]) as s,
        websockets.connect(f"ws://127.0.0.1:{s.port}/deflate", compression="deflate") as client,
    ):
        await client.send(json.dumps({"event": "echo", "data": {"n": 2}}))
        assert json.loads(await asyncio.wait_for(client.recv(), TIMEOUT)) == {
            "event": "echo",
            "data": {"n": 2},
        }
        connection = ws.handlers[0].ws_connection
        assert connection is not None
        assert not isinstance(connection.stream, TransportStream)
        assert type(connection) is not BulkFrameProtocol  # Tornado's reader inflates


async def test_frames_sent_right_behind_the_upgrade_request_are_read_first() -> None:
    """What Tornado's stream read past the request (a client that does not wait for the 101) is
    handed to the transport's parser before anything the socket reads next."""
    echo_app()
    async with serve(tornado_settings=OWNED) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws/own HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        frames = b"".join(
            client_frame(0x1, json.dumps({"event": "echo", "data": {"n": n}}).encode()) for n in range(3)
        )
        writer.write(request + frames)
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)).startswith(b"HTTP/1.1 101")
        client = RawClient(reader, writer)
        for n in range(3):
            opcode, payload = await asyncio.wait_for(client.read_frame(), TIMEOUT)
            assert (opcode, json.loads(payload)) == (0x1, {"event": "echo", "data": {"n": n}})
        client.close()


async def test_a_broadcast_frame_is_built_once_for_every_member(monkeypatch: pytest.MonkeyPatch) -> None:
    ws = echo_app()
    built: list[bytes] = []
    server_frame = wire.server_frame

    def counting(opcode: int, payload: bytes, fin: bool = True, flags: int = 0) -> bytes:
        built.append(payload)
        return server_frame(opcode, payload, fin, flags)

    async with serve(tornado_settings=OWNED) as server:
        clients = [await RawClient.connect(server.port, "/own") for _ in range(5)]
        await wait_until(lambda: len(ws.handlers) == 5)
        monkeypatch.setattr(wire, "server_frame", counting)  # counts, then builds as before
        ws.emit("news", {"n": 7})
        for client in clients:
            opcode, payload = await asyncio.wait_for(client.read_frame(), TIMEOUT)
            assert (opcode, json.loads(payload)) == (0x1, {"event": "news", "data": {"n": 7}})
            client.close()
        assert len([payload for payload in built if b"news" in payload]) == 1


async def test_a_client_that_does_not_read_is_closed_by_the_backlog_bound_from_the_transports_buffer() -> (
    None
):
    """The transport's write buffer is the backlog: past ``max_backlog`` the client gets 1013."""
    from tornado_websockets import delivery
    from tornado_websockets.limits import BACKLOG_CLOSE_CODE, Limits

    ws = WebSocket("/slow", limits=Limits(max_backlog=256 * 1024))
    async with serve(tornado_settings=OWNED) as server:
        client = await RawClient.connect(server.port, "/slow", receive_buffer=4096)
        await wait_until(lambda: len(ws.handlers) == 1)
        handler = ws.handlers[0]
        assert isinstance(handler.ws_connection.stream, TransportStream)  # type: ignore[union-attr]
        backlogs = []
        for _ in range(2000):
            if handler.is_closed:
                break
            ws.emit("big", {"x": "y" * 8192})
            backlogs.append(handler.backlog)
            await asyncio.sleep(0)
        assert handler.is_closed
        assert max(backlogs) > 0
        assert delivery.dropped().get((delivery.BACKLOG_BOUND, "/slow"), 0) >= 1
        client.writer.write(b"")  # the server's close frame waits behind what the client never read
        assert BACKLOG_CLOSE_CODE == 1013
        client.close()


def test_uvloop_serves_owned_connections_too() -> None:
    """uvloop's transports: reading into the shared buffer, the write buffer as the backlog, pings."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        for test in (
            test_the_setting_serves_a_connection_on_a_transport_after_the_upgrade,
            test_frames_sent_right_behind_the_upgrade_request_are_read_first,
            test_a_client_that_does_not_read_is_closed_by_the_backlog_bound_from_the_transports_buffer,
        ):
            TornadoWrapper.reset()
            await test()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


async def test_tls_stays_on_tornados_stream() -> None:
    """Tornado keeps TLS: the connection is read and written through its SSLIOStream."""
    import ssl

    import tornado.iostream
    import trustme

    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    ws = echo_app("/secure")
    TornadoWrapper.start_app(tornado_settings=OWNED)
    TornadoWrapper.listen(0, "127.0.0.1", ssl_options=server_context)
    try:
        url = f"wss://127.0.0.1:{TornadoWrapper.tornado_port}/ws/secure"
        async with websockets.connect(url, ssl=client_context) as client:
            await client.send(json.dumps({"event": "echo", "data": {"n": 3}}))
            assert json.loads(await asyncio.wait_for(client.recv(), TIMEOUT)) == {
                "event": "echo",
                "data": {"n": 3},
            }
            connection = ws.handlers[0].ws_connection
            assert connection is not None
            assert isinstance(connection.stream, tornado.iostream.SSLIOStream)
    finally:
        await TornadoWrapper.shutdown()


async def test_no_iostream_is_kept_for_an_owned_connection() -> None:
    """The emptied IOStream is let go (the request's HTTP connection held it): memory per idle
    connection is the transport's, not both."""
    import gc

    import tornado.iostream

    ws = echo_app()
    async with serve(tornado_settings=OWNED) as server:
        clients = await owned_clients(server.port, ws, 3)
        gc.collect()
        # The IOStreams whose socket was taken (its object left without a descriptor).
        emptied = [
            o
            for o in gc.get_objects()
            if type(o) is tornado.iostream.IOStream and o.socket is not None and o.socket.fileno() == -1
        ]
        assert emptied == []
        for client in clients:
            client.close()


class _Bare(tornado.websocket.WebSocketHandler):
    """Tornado's own handler, nothing of this library: what its instance dicts hold by themselves."""

    opened: list[_Bare] = []

    def open(self, *args: str, **kwargs: str) -> None:
        self.opened.append(self)


async def test_the_library_adds_nothing_to_tornados_instance_dicts() -> None:
    """This library's attributes of a handler and its protocol live in slots: Tornado's own fill
    the instance dicts nearly to the 30 keys a dict can share with its class's other instances,
    past which every connection would carry two unshared dicts (2-3 KiB)."""
    ws = echo_app()
    _Bare.opened.clear()
    async with (
        serve(tornado_settings=OWNED, tornado_handlers=[(r"/bare", _Bare)]) as server,
        server.connect("/own") as client,
    ):
        await client.emit("echo", {"n": 1})
        assert (await client.receive()).data == {"n": 1}
        bare_client = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{server.port}/bare")
        await wait_until(lambda: len(_Bare.opened) == 1)
        bare = _Bare.opened[0]
        handler = ws.handlers[0]
        assert set(vars(handler)) - set(vars(bare)) == set()
        assert set(vars(handler.ws_connection)) - set(vars(bare.ws_connection)) == set()
        bare_client.close()


async def test_an_idle_connection_has_no_queue_or_task_set_of_its_own() -> None:
    """Made on first use (tests/test_liveness.py queues messages, test_event_tasks.py cancels)."""
    ws = echo_app()
    async with serve(tornado_settings=OWNED) as server, server.connect("/own") as client:
        await client.emit("echo", {"n": 1})
        assert (await client.receive()).data == {"n": 1}
        handler = ws.handlers[0]
        connection = handler.ws_connection
        assert isinstance(connection, OwnedFrameProtocol)
        assert connection._inbox is framereader._NO_MESSAGES
        assert handler.dispatcher._cancel_on_close is None
        assert handler.catchup._tasks is None


async def test_no_http_server_connection_is_kept_for_an_owned_connection() -> None:
    """The request's HTTP server connection (its finished request loop's task, its emptied stream)
    is let go; the request itself, its headers, cookies and address stay readable."""
    import gc

    from tornado.http1connection import HTTP1ServerConnection

    ws = echo_app()
    async with serve(tornado_settings=OWNED) as server:
        clients = await owned_clients(server.port, ws, 3)
        gc.collect()
        contexts = {id(h.request.connection.context) for h in ws.handlers}  # type: ignore[attr-defined]
        kept = [o for o in gc.get_objects() if type(o) is HTTP1ServerConnection and id(o.context) in contexts]
        assert kept == []
        request = ws.handlers[0].request
        assert request.headers["Upgrade"].lower() == "websocket"
        assert request.remote_ip == "127.0.0.1"
        assert request.path == "/ws/own"
        for client in clients:
            client.close()


async def test_keepalive_pings_go_out_on_a_timer_not_a_task_per_connection() -> None:
    """Tornado pings from a task per connection; an owned connection pings from a timer of the
    loop, as often, and still closes a client that stops answering (tests/test_limits.py)."""
    from tornado_websockets.limits import Limits

    ws = WebSocket("/kept", limits=Limits(ping_interval=0.05, ping_timeout=0.05))
    async with (
        serve(tornado_settings=OWNED) as server,
        websockets.connect(server.url("/kept"), ping_interval=None) as client,  # answers pings
    ):
        await wait_until(lambda: len(ws.handlers) == 1)
        connection = ws.handlers[0].ws_connection
        assert isinstance(connection, OwnedFrameProtocol)
        sent = connection._wire_bytes_out
        ping = len(wire.server_frame(wire.PING, b""))
        await wait_until(lambda: connection._wire_bytes_out >= sent + 3 * ping)  # pings, each answered
        assert client.close_code is None
        assert not connection.is_closing()
        pinging = [t for t in asyncio.all_tasks() if "periodic_ping" in repr(t.get_coro())]
        assert pinging == []
