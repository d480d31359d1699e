"""The bulk frame reader over real sockets: RFC 6455's cases, grouped as the Autobahn suite groups them.

Each case connects a raw client (tests/rawclient.py) to a real server and writes frames built by
hand (tests/wsframes.py). The server's ``echo`` event answers every message it receives, and a
message that is not an event earns a ``warning``: so every message delivered shows up as one
reply, in order, and a message that must not be delivered shows up as none.

Every case runs twice (the ``connection_path`` fixture): on a connection owned after the upgrade
(`tornado_websockets.ownconnection`), then on Tornado's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.iostream
import tornado.testing
import tornado.web
import tornado.websocket

from tests.polling import wait_until
from tests.rawclient import RawClient
from tests.wsframes import client_frame, close_payload
from tornado_websockets import framereader
from tornado_websockets.framereader import FRAME_READER_SETTING, BulkFrameProtocol
from tornado_websockets.limits import Limits
from tornado_websockets.testing import TestServer, WebSocketTestClient, serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

TIMEOUT = 10


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every case on both paths (``connection_path``); Tornado's own TestCase below takes none."""
    if "connection_path" not in metafunc.fixturenames:
        metafunc.fixturenames.append("connection_path")
    metafunc.parametrize("connection_path", [True, False], ids=["owned", "iostream"], indirect=True)


def echo_app(limits: Limits | None = None, path: str = "/rfc") -> WebSocket:
    ws = WebSocket(path, limits=limits)

    @ws.on
    async def echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("echo", data)

    return ws


@contextlib.asynccontextmanager
async def raw_server(
    limits: Limits | None = None, **settings: Any
) -> AsyncIterator[tuple[TestServer, WebSocket, RawClient]]:
    ws = echo_app(limits)
    async with serve(tornado_settings=settings) as server:
        client = await RawClient.connect(server.port, "/rfc")
        try:
            await wait_until(lambda: len(ws.handlers) == 1)
            yield server, ws, client
        finally:
            client.close()


def echo_message(size: int, opcode: int = 0x1) -> bytes:
    """An ``echo`` event of exactly ``size`` bytes (at least 32)."""
    filler = size - len(b'{"event":"echo","data":{"t":""}}')
    assert filler >= 0
    return b'{"event":"echo","data":{"t":"' + b"x" * filler + b'"}}'


def echo_frame(text: str) -> bytes:
    return client_frame(0x1, json.dumps({"event": "echo", "data": {"t": text}}).encode())


async def next_frame(client: RawClient) -> tuple[int, bytes]:
    return await asyncio.wait_for(client.read_frame(), TIMEOUT)


async def reply(client: RawClient) -> tuple[str, Any]:
    """The next text frame from the server, as (event, data)."""
    opcode, payload = await next_frame(client)
    assert opcode == 0x1, (opcode, payload)
    frame = json.loads(payload)
    return frame["event"], frame.get("data")


async def echoed(client: RawClient) -> str:
    event, data = await reply(client)
    assert event == "echo", data
    return str(data["t"])


async def closed_with(client: RawClient, answer: bool = True) -> int | None:
    """The code of the server's close frame, after which the server ends the TCP connection.

    The client answers the close, as a client should (unless it sent a close already: not
    ``answer``); the server then ends the TCP connection cleanly, and nothing came between its
    close frame and that end.
    """
    opcode, payload = await next_frame(client)
    assert opcode == 0x8, (opcode, payload)
    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
    if answer:
        client.writer.write(client_frame(0x8, payload[:2]))
    assert await asyncio.wait_for(client.reader.read(), TIMEOUT) == b""
    return code


async def fails_with(code: int, *frames: bytes, limits: Limits | None = None) -> None:
    """Sending ``frames`` (after one good message) closes the connection with ``code`` and
    delivers nothing after the offending frame."""
    async with raw_server(limits) as (_, ws, client):
        client.writer.write(echo_frame("before") + b"".join(frames) + echo_frame("after"))
        assert await echoed(client) == "before"
        assert await closed_with(client, answer=frames[-1][0] & 0x0F != 0x8) == code
        await wait_until(lambda: not ws.handlers)


# 1. Framing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 125, 126, 127, 65535, 65536, 1024 * 1024])
async def test_framing_text_and_binary_messages_of_every_length_encoding(size: int) -> None:
    async with raw_server() as (_, ws, client):
        client.writer.write(client_frame(0x1, echo_message(size)) + client_frame(0x2, echo_message(size)))
        assert len(await echoed(client)) == size - 32
        assert len(await echoed(client)) == size - 32
        assert isinstance(ws.handlers[0].ws_connection, BulkFrameProtocol)


async def test_framing_an_empty_message_is_delivered() -> None:
    async with raw_server() as (_, _ws, client):
        client.writer.write(client_frame(0x1, b"") + client_frame(0x2, b""))
        assert await reply(client) == ("warning", {"message": "Invalid JSON was sent."})
        assert await reply(client) == ("warning", {"message": "Invalid JSON was sent."})


async def test_framing_a_message_written_one_byte_at_a_time() -> None:
    async with raw_server() as (_, _ws, client):
        frame = client_frame(0x1, echo_message(300))
        for index in range(len(frame)):
            client.writer.write(frame[index : index + 1])
            await client.writer.drain()
            await asyncio.sleep(0)  # let each byte leave on its own
        assert len(await echoed(client)) == 300 - 32


async def test_framing_many_frames_in_one_write_arrive_in_order() -> None:
    async with raw_server() as (_, _ws, client):
        client.writer.write(b"".join(echo_frame(str(n)) for n in range(500)))
        assert [await echoed(client) for _ in range(500)] == [str(n) for n in range(500)]


async def test_framing_lengths_may_use_a_longer_encoding() -> None:
    async with raw_server() as (_, _ws, client):
        message = echo_message(40)
        client.writer.write(
            client_frame(0x1, message, length_bytes=2) + client_frame(0x1, message, length_bytes=8)
        )
        assert [await echoed(client), await echoed(client)] == ["x" * 8, "x" * 8]


async def test_framing_an_unmasked_client_frame_closes_with_1002() -> None:
    await fails_with(1002, client_frame(0x1, b"{}", masked=False))


# 2. Pings and pongs ----------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"hello", b"\xfe" * 125])
async def test_ping_is_answered_with_a_pong_of_the_same_payload(payload: bytes) -> None:
    async with raw_server() as (_, _ws, client):
        client.writer.write(client_frame(0x9, payload) + echo_frame("after the ping"))
        assert await next_frame(client) == (0xA, payload)
        assert await echoed(client) == "after the ping"


async def test_ping_many_pings_in_one_write_are_answered_up_to_the_last() -> None:
    async with raw_server() as (_, _ws, client):
        client.writer.write(b"".join(client_frame(0x9, str(n).encode()) for n in range(50)))
        client.writer.write(echo_frame("done"))
        pongs = []
        while (frame := await next_frame(client))[0] == 0xA:
            pongs.append(int(frame[1]))
        # RFC 6455 5.5.3 lets a server answer only the latest of pings it had no time to answer.
        assert pongs == sorted(pongs)
        assert pongs[-1] == 49
        assert json.loads(frame[1])["data"] == {"t": "done"}


async def test_ping_an_unsolicited_pong_is_ignored() -> None:
    async with raw_server() as (_, _ws, client):
        client.writer.write(client_frame(0xA, b"unasked") + echo_frame("still here"))
        assert await echoed(client) == "still here"


async def test_ping_over_125_bytes_closes_with_1002() -> None:
    await fails_with(1002, client_frame(0x9, b"x" * 126))


async def test_ping_fragmented_closes_with_1002() -> None:
    await fails_with(1002, client_frame(0x9, b"x", fin=False))


# 3. Reserved bits ------------------------------------------------------------------------------


@pytest.mark.parametrize("rsv", range(1, 8))
async def test_reserved_bits_without_an_extension_close_with_1002(rsv: int) -> None:
    await fails_with(1002, client_frame(0x1, b"{}", rsv=rsv))


async def test_reserved_bits_on_a_control_frame_close_with_1002() -> None:
    await fails_with(1002, client_frame(0x9, b"", rsv=0b100))


# 4. Opcodes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
async def test_opcodes_reserved_close_with_1002(opcode: int) -> None:
    await fails_with(1002, client_frame(opcode, b"payload"))


# 5. Fragmentation ------------------------------------------------------------------------------


async def test_fragmentation_with_control_frames_between_fragments() -> None:
    message = echo_message(100)
    async with raw_server() as (_, _ws, client):
        client.writer.write(
            client_frame(0x1, message[:10], fin=False)
            + client_frame(0x9, b"between")
            + client_frame(0x0, message[10:50], fin=False)
            + client_frame(0xA, b"unasked")
            + client_frame(0x0, message[50:], fin=True)
        )
        assert await next_frame(client) == (0xA, b"between")  # the pong does not wait for the message
        assert await echoed(client) == "x" * 68


async def test_fragmentation_in_one_byte_fragments_binary() -> None:
    message = echo_message(64)
    frames = [client_frame(0x2 if i == 0 else 0x0, message[i : i + 1], fin=i == 63) for i in range(64)]
    async with raw_server() as (_, _ws, client):
        client.writer.write(b"".join(frames))
        assert await echoed(client) == "x" * 32


async def test_fragmentation_a_continuation_without_a_message_closes_with_1002() -> None:
    await fails_with(1002, client_frame(0x0, b"{}"))


async def test_fragmentation_a_new_message_before_the_last_ended_closes_with_1002() -> None:
    await fails_with(1002, client_frame(0x1, b"{", fin=False), client_frame(0x1, b"}"))


# 6. UTF-8 --------------------------------------------------------------------------------------


async def test_utf8_a_character_split_between_fragments_is_valid() -> None:
    message = json.dumps({"event": "echo", "data": {"t": "κόσμε"}}, ensure_ascii=False).encode()
    cut = message.index("ό".encode()) + 1  # inside the two bytes of ό
    async with raw_server() as (_, _ws, client):
        client.writer.write(client_frame(0x1, message[:cut], fin=False) + client_frame(0x0, message[cut:]))
        assert await echoed(client) == "κόσμε"


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"])
async def test_utf8_invalid_text_closes_with_1007(bad: bytes) -> None:
    await fails_with(1007, client_frame(0x1, b'{"event": "echo", "data": {"t": "' + bad + b'"}}'))


async def test_utf8_invalid_in_a_later_fragment_closes_with_1007() -> None:
    await fails_with(
        1007, client_frame(0x1, b'{"event": "', fin=False), client_frame(0x0, b"\xff", fin=False)
    )


async def test_utf8_a_character_cut_by_the_end_of_the_message_closes_with_1007() -> None:
    await fails_with(1007, client_frame(0x1, b'"\xce', fin=False), client_frame(0x0, b""))


async def test_utf8_binary_messages_are_not_checked() -> None:
    async with raw_server() as (_, _ws, client):
        client.writer.write(client_frame(0x2, b"\xff\xfe"))
        assert await reply(client) == ("warning", {"message": "Invalid JSON was sent."})


# 7. Close handling -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1011, 3000, 4999])
async def test_close_the_code_is_echoed_and_the_close_event_sees_it(code: int) -> None:
    async with raw_server() as (_, ws, client):
        handler = ws.handlers[0]
        client.writer.write(client_frame(0x8, close_payload(code, b"au revoir")) + echo_frame("late"))
        opcode, payload = await next_frame(client)
        assert (opcode, payload) == (0x8, struct.pack("!H", code))
        assert await asyncio.wait_for(client.reader.read(), TIMEOUT) == b""  # nothing after: not "late"
        await wait_until(lambda: not ws.handlers)
        assert (handler.close_code, handler.close_reason) == (code, "au revoir")


async def test_close_without_a_code_is_answered_without_one() -> None:
    async with raw_server() as (_, ws, client):
        handler = ws.handlers[0]
        client.writer.write(client_frame(0x8, b""))
        assert await next_frame(client) == (0x8, b"")
        await wait_until(lambda: not ws.handlers)
        assert handler.close_code is None


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
async def test_close_with_a_code_that_may_not_be_sent_closes_with_1002(code: int) -> None:
    await fails_with(1002, client_frame(0x8, close_payload(code)))


async def test_close_with_a_one_byte_payload_closes_with_1002() -> None:
    await fails_with(1002, client_frame(0x8, b"\x03"))


async def test_close_with_a_reason_that_is_not_utf8_closes_with_1007() -> None:
    await fails_with(1007, client_frame(0x8, close_payload(1000, b"\xff")))


async def test_close_by_the_server_then_the_client_answers() -> None:
    async with raw_server() as (_, ws, client):
        handler = ws.handlers[0]
        handler.close(4000, "bye")
        assert await closed_with(client) == 4000
        await wait_until(lambda: handler.ws_connection is None)
        assert handler.close_code == 4000  # the client's answer, as Tornado's reader records it


# 8. Limits -------------------------------------------------------------------------------------


async def test_limits_a_message_over_max_message_size_closes_with_1009() -> None:
    await fails_with(1009, client_frame(0x1, echo_message(1001)), limits=Limits(max_message_size=1000))


async def test_limits_fragments_adding_up_over_max_message_size_close_with_1009() -> None:
    message = echo_message(1001)
    frames = client_frame(0x1, message[:600], fin=False), client_frame(0x0, message[600:])
    await fails_with(1009, *frames, limits=Limits(max_message_size=1000))


async def test_limits_1009_reaches_a_client_still_writing_its_message_every_time() -> None:
    """Issue 14 item 5: the close frame must not be lost in a TCP reset while the client writes."""
    ws = echo_app(Limits(max_message_size=64 * 1024))
    big = client_frame(0x1, b"x" * (2 * 1024 * 1024))
    async with serve() as server:
        for _ in range(20):
            client = await RawClient.connect(server.port, "/rfc")
            client.writer.write(big)  # the server decides from the header, 2 MiB before the end
            writing = asyncio.ensure_future(client.writer.drain())
            assert await closed_with(client) == 1009
            await writing
            client.close()
        await wait_until(lambda: not ws.handlers)


@pytest.mark.parametrize("reader", [True, False], ids=["bulk", "tornado"])
@pytest.mark.parametrize("mib", [32, 64])
async def test_limits_1009_reaches_a_client_that_sends_far_more_than_the_limit(
    reader: bool, mib: int
) -> None:
    """Issue 21 item 4: the drain after the close is bounded by time, not by bytes, so a client
    that had 32 or 64 MiB queued for a server whose limit is 10 MiB still gets 1009, not a reset."""
    ws = echo_app(Limits(max_message_size=10 * 1024 * 1024))
    size = mib * 1024 * 1024
    # Masked with a key of zeros: the payload goes as it is, without masking 64 MiB in Python.
    big = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", size) + b"\0\0\0\0" + b"x" * size
    async with serve(tornado_settings={FRAME_READER_SETTING: reader}) as server:
        client = await RawClient.connect(server.port, "/rfc")
        client.writer.write(big)
        del big
        await asyncio.wait_for(client.writer.drain(), TIMEOUT)  # all of it, then read: as a client
        assert await closed_with(client) == 1009  # whose send returns before it reads
        client.close()
        await wait_until(lambda: not ws.handlers)


async def test_limits_a_client_that_keeps_sending_after_the_close_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(framereader, "DRAIN_SECONDS", 1.0)
    async with raw_server() as (_, ws, client):
        client.writer.write(client_frame(0x1, b"{}", rsv=1))
        opcode, payload = await next_frame(client)
        assert (opcode, payload[:2]) == (0x8, struct.pack("!H", 1002))
        with contextlib.suppress(ConnectionError):  # the server may reset: it stopped reading
            for _ in range(100):
                client.writer.write(client_frame(0x2, b"z" * 4096))
                await client.writer.drain()
        # Dropped after DRAIN_SECONDS, before Tornado's close timeout of 5 s, without the client's close.
        await wait_until(lambda: not ws.handlers, timeout=4)


# Delivery --------------------------------------------------------------------------------------


async def test_a_message_waits_for_the_previous_event_function_to_finish() -> None:
    ws = WebSocket("/ordered")
    seen: list[int] = []
    running = 0
    overlap = 0

    @ws.on
    async def step(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        nonlocal running, overlap
        running += 1
        overlap = max(overlap, running)
        await asyncio.sleep(0.001 * (data["n"] % 3))
        seen.append(data["n"])
        running -= 1
        socket.emit("done", data)

    async with serve() as server:
        client = await RawClient.connect(server.port, "/ordered")
        frames = [json.dumps({"event": "step", "data": {"n": n}}).encode() for n in range(60)]
        client.writer.write(b"".join(client_frame(0x1, frame) for frame in frames))  # one write
        for _ in range(60):
            await reply(client)
        client.close()
    assert seen == list(range(60))
    assert overlap == 1


async def test_a_flood_on_one_connection_does_not_starve_another() -> None:
    ws = WebSocket("/fair")
    handled: list[str] = []

    @ws.on
    async def flood(socket: WebSocketHandler) -> None:
        handled.append("flood")

    @ws.on
    async def hello(socket: WebSocketHandler) -> None:
        handled.append("hello")
        socket.emit("hello")

    async with serve() as server:
        flooder = await RawClient.connect(server.port, "/fair")
        bystander = await RawClient.connect(server.port, "/fair")
        message = client_frame(0x1, b'{"event": "flood"}')
        flooder.writer.write(message * 20_000)  # 480 KB in one write: many chunks, each many messages
        await wait_until(lambda: "flood" in handled)
        bystander.writer.write(client_frame(0x1, b'{"event": "hello"}'))
        assert await reply(bystander) == ("hello", {})
        await wait_until(lambda: len(handled) == 20_001)
        # Served between the flood's messages, not after all of them.
        assert handled.index("hello") < 20_000
        flooder.close()
        bystander.close()


# As users run it: their own Application, Tornado's test case, permessage-deflate ------------------


@contextlib.asynccontextmanager
async def users_app(
    handler_class: type[WebSocketHandler] = WebSocketHandler, **settings: Any
) -> AsyncIterator[tuple[int, WebSocket]]:
    ws = echo_app(path="/mine")
    path, _, kwargs = ws.handler_spec()
    app = tornado.web.Application([(path, handler_class, kwargs)], **settings)
    sock, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets([sock])
    try:
        yield port, ws
    finally:
        server.stop()
        for handler in list(ws.handlers):
            handler.close()


@pytest.mark.parametrize("enabled", [True, False])
async def test_a_users_own_application_uses_the_reader_unless_switched_off(enabled: bool) -> None:
    async with users_app(**{FRAME_READER_SETTING: enabled}) as (port, ws):
        client = await WebSocketTestClient.connect(f"ws://127.0.0.1:{port}/ws/mine")
        async with client:
            await client.emit("echo", {"t": "mine"})
            assert await client.wait_for("echo") == {"t": "mine"}
            (handler,) = ws.handlers
            assert isinstance(handler.ws_connection, BulkFrameProtocol) is enabled


class Deflating(WebSocketHandler):
    def get_compression_options(self) -> dict[str, Any]:
        return {}


async def test_with_permessage_deflate_tornados_reader_inflates() -> None:
    async with users_app(Deflating) as (port, ws):
        request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{port}/ws/mine")
        connection = await tornado.websocket.websocket_connect(request, compression_options={})
        client = WebSocketTestClient(connection)
        async with client:
            await client.emit("echo", {"t": "z" * 5000})
            assert await client.wait_for("echo") == {"t": "z" * 5000}
            (handler,) = ws.handlers
            protocol = handler.ws_connection
            assert not isinstance(protocol, BulkFrameProtocol)
            assert isinstance(protocol, tornado.websocket.WebSocketProtocol13)
            assert protocol._decompressor is not None
        # The same handler, for a client that does not offer compression: the bulk reader.
        async with await WebSocketTestClient.connect(f"ws://127.0.0.1:{port}/ws/mine") as plain:
            await plain.emit("echo", {"t": "plain"})
            assert await plain.wait_for("echo") == {"t": "plain"}
            assert any(isinstance(h.ws_connection, BulkFrameProtocol) for h in ws.handlers)


class AlwaysBulk(Deflating):
    def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
        params = tornado.websocket._WebSocketParams(
            max_message_size=self.max_message_size, compression_options={}
        )
        return BulkFrameProtocol(self, False, params)


async def test_a_bulk_protocol_that_negotiated_deflate_reads_with_tornados_reader() -> None:
    async with users_app(AlwaysBulk) as (port, ws):
        request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{port}/ws/mine")
        connection = await tornado.websocket.websocket_connect(request, compression_options={})
        async with WebSocketTestClient(connection) as client:
            await client.emit("echo", {"t": "y" * 5000})  # compressed: our parser would refuse RSV1
            assert await client.wait_for("echo") == {"t": "y" * 5000}
            (handler,) = ws.handlers
            assert isinstance(handler.ws_connection, BulkFrameProtocol)


class UsersTestCase(tornado.testing.AsyncHTTPTestCase):
    """Tornado's own test case, a new IOLoop per test: the reader serves each test's connections."""

    def get_app(self) -> tornado.web.Application:
        self.ws = echo_app(path="/case")
        return tornado.web.Application([self.ws.handler_spec()])

    async def _echo_over_bulk_reader(self, text: str) -> None:
        client = await RawClient.connect(self.get_http_port(), "/case")
        client.writer.write(echo_frame(text) + client_frame(0x9, b"p"))
        # The pong does not wait for the event function: it may come first.
        frames = {await next_frame(client), await next_frame(client)}
        assert (0xA, b"p") in frames
        assert any(op == 0x1 and json.loads(data)["data"] == {"t": text} for op, data in frames)
        assert isinstance(self.ws.handlers[0].ws_connection, BulkFrameProtocol)
        client.writer.write(client_frame(0x8, close_payload(1000)))
        assert await next_frame(client) == (0x8, struct.pack("!H", 1000))
        client.close()

    @tornado.testing.gen_test
    async def test_first(self) -> None:
        await self._echo_over_bulk_reader("first")

    @tornado.testing.gen_test
    async def test_second(self) -> None:
        await self._echo_over_bulk_reader("second")


# The private names of Tornado the library relies on ----------------------------------------------


async def test_every_private_tornado_name_the_library_uses_exists_in_the_installed_tornado() -> None:
    """The canary: a Tornado release that renames one of them fails here, not in production."""
    async with raw_server() as (_, ws, client):
        protocol = ws.handlers[0].ws_connection
        # An IOStream of its own: an owned connection's protocol has a TransportStream in its place.
        stream = tornado.iostream.IOStream(socket.socket())
        owners = {"tornado.websocket": tornado.websocket, "protocol": protocol, "stream": stream}
        missing = [
            f"{owner}.{name}"
            for owner, names in framereader.TORNADO_PRIVATE_NAMES.items()
            for name in names
            if not hasattr(owners[owner], name)
        ]
        stream.close()
        assert missing == []
        client.writer.write(client_frame(0x9, b"p"))  # answered with or without the optional names
        assert await next_frame(client) == (0xA, b"p")
    optional = [name for names in framereader.TORNADO_OPTIONAL_NAMES.values() for name in names]
    print(  # noqa: T201 - which Tornado ran, and with which optional names
        f"\nTornado {tornado.version}: optional private names present: "
        f"{[n for n in optional if hasattr(tornado.websocket.WebSocketProtocol13, n)]}"
    )
