"""Limits over real sockets: message size, keepalive, slow consumers, inbound rate."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.polling import wait_until
from tests.rawclient import RawClient
from tornado_websockets import delivery
from tornado_websockets.limits import BACKLOG_CLOSE_CODE, RATE_CLOSE_CODE, Limits, RateLimiter
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


def echo_app(path: str = "/limited", limits: Limits | None = None) -> WebSocket:
    ws = WebSocket(path, limits=limits)

    @ws.on
    async def echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("echo", data)

    return ws


@pytest.mark.parametrize(
    "kwargs", [{"max_message_size": 0}, {"max_backlog": -1}, {"burst": 0}, {"max_rate": 0}]
)
def test_limits_are_checked(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="should be positive"):
        Limits(**kwargs)


def test_defaults_are_documented_values() -> None:
    limits = Limits()
    assert (limits.max_message_size, limits.max_backlog, limits.max_rate) == (
        1024 * 1024,
        4 * 1024 * 1024,
        None,
    )
    assert (limits.ping_interval, limits.ping_timeout) == (20.0, 20.0)


def test_rate_limiter_refills_over_time() -> None:
    limiter = RateLimiter(rate=1000, burst=2)
    assert limiter.allow()
    assert limiter.allow()
    assert not limiter.allow()
    assert limiter.refused == 1
    time.sleep(0.01)
    assert limiter.allow()
    assert limiter.refused == 0


async def test_oversized_message_closes_that_connection_only_with_1009(
    reader_settings: dict[str, Any],
) -> None:
    echo_app(limits=Limits(max_message_size=1000))
    async with (
        serve(tornado_settings=reader_settings) as server,
        server.connect("/limited") as big,
        server.connect("/limited") as other,
    ):
        await big.emit("echo", {"text": "x" * 2000})
        assert await big.wait_closed() == 1009
        await other.emit("echo", {"text": "x" * 900})
        assert (await other.wait_for("echo"))["text"] == "x" * 900


async def test_process_wide_limits_apply_where_a_path_sets_none(reader_settings: dict[str, Any]) -> None:
    echo_app()
    TornadoWrapper.limits = Limits(max_message_size=100)
    async with serve(tornado_settings=reader_settings) as server, server.connect("/limited") as client:
        await client.emit("echo", {"text": "x" * 200})
        assert await client.wait_closed() == 1009


async def test_a_peer_that_stops_answering_pings_is_closed_and_unlinked(
    reader_settings: dict[str, Any],
) -> None:
    ws = echo_app(limits=Limits(ping_interval=0.1, ping_timeout=0.1))
    async with serve(tornado_settings=reader_settings) as server:
        silent = await RawClient.connect(server.port, "/limited")  # never reads, so never pongs
        async with server.connect("/limited") as healthy:  # Tornado's client answers pings itself
            await wait_until(lambda: len(ws.handlers) == 2)
            await wait_until(lambda: len(ws.handlers) == 1)
            await asyncio.sleep(0.5)  # several ping intervals later the answering peer is still there
            await healthy.emit("echo", {"alive": True})
            assert await healthy.wait_for("echo") == {"alive": True}
            assert len(ws.handlers) == 1
        silent.close()


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


async def test_a_client_that_stops_reading_is_closed_and_memory_stays_bounded(
    reader_settings: dict[str, Any],
) -> None:
    limit = 1024 * 1024
    ws = echo_app(limits=Limits(max_backlog=limit))
    payload = {"blob": "y" * 10_000}
    async with serve(tornado_settings=reader_settings) as server, server.connect("/limited") as reader:
        slow = await RawClient.connect(server.port, "/limited", receive_buffer=4096)
        await wait_until(lambda: len(ws.handlers) == 2)
        slow_handler = ws.handlers[1]
        before = peak_rss = rss_bytes()
        peak_backlog = 0
        for _ in range(100):  # 100 rounds x 20 frames x 10 kB = 20 MB offered to each client
            for _ in range(20):
                ws.emit("stream", payload)
            peak_backlog = max(peak_backlog, slow_handler.backlog)
            peak_rss = max(peak_rss, rss_bytes())
            for _ in range(20):
                await reader.wait_for("stream")
        assert slow_handler not in ws.handlers
        assert slow_handler.is_closed
        assert 0 < peak_backlog <= limit
        drops = delivery.dropped()
        assert drops[(delivery.BACKLOG_BOUND, "/limited")] == 1  # the frame that would pass the bound
        # The server held at most the bound for the slow client, not the 20 MB it was offered.
        assert peak_rss - before < 16 * 1024 * 1024
        assert len(ws.handlers) == 1  # the reading client got all 2,000 frames and is still there
        assert await asyncio.wait_for(slow.read_until_close(), 10) in (BACKLOG_CLOSE_CODE, None)
        slow.close()
        mib = 1024 * 1024
        print(  # noqa: T201
            f"slow consumer: 20 MB offered, peak backlog {peak_backlog // 1024} KiB "
            f"(bound {limit // 1024} KiB), RSS {before / mib:.1f} MiB before, "
            f"peak {peak_rss / mib:.1f} MiB (+{(peak_rss - before) / mib:.1f})"
        )
        # It read until the close in the end: what its backlog held reached it, nothing more is lost.
        lost = {reason for reason, path in delivery.dropped() if path == "/limited"}
        assert lost <= {delivery.BACKLOG_BOUND, delivery.CONNECTION_CLOSED}


async def test_what_a_client_that_never_reads_had_in_its_backlog_counts_as_slow_consumer(
    reader_settings: dict[str, Any],
) -> None:
    ws = echo_app(limits=Limits(max_backlog=256 * 1024))
    async with serve(tornado_settings=reader_settings) as server:
        slow = await RawClient.connect(server.port, "/limited", receive_buffer=4096)
        await wait_until(lambda: len(ws.handlers) == 1)
        handler = ws.handlers[0]
        while not handler.is_closed:
            ws.emit("stream", {"blob": "y" * 10_000})
            await asyncio.sleep(0)
        # Tornado aborts the stream when the close handshake times out; the frames still
        # waiting in it are lost, each counted once.
        await wait_until(lambda: delivery.dropped().get((delivery.SLOW_CONSUMER, "/limited"), 0) > 0, 15)
        assert delivery.dropped()[(delivery.BACKLOG_BOUND, "/limited")] == 1
        assert (delivery.WRITE_FAILED, "/limited") not in delivery.dropped()
        slow.close()


async def test_rate_limit_warns_then_closes(reader_settings: dict[str, Any]) -> None:
    echo_app(limits=Limits(max_rate=5, burst=5))
    async with serve(tornado_settings=reader_settings) as server, server.connect("/limited") as client:
        for n in range(30):
            await client.emit("echo", {"n": n})
        warning = await client.wait_for("warning")
        assert warning == {"message": "Too many events: slow down to 5 per second."}
        assert await client.wait_closed() == RATE_CLOSE_CODE
        echoed = [frame.data["n"] for frame in client.buffered() if frame.event == "echo"]
        assert echoed == list(range(5))  # the burst was served, in order, then nothing more


async def test_one_frame_larger_than_the_backlog_bound_reaches_a_client_that_reads(
    reader_settings: dict[str, Any],
) -> None:
    ws = WebSocket("/big", limits=Limits(max_backlog=4 * 1024 * 1024))
    big = "x" * (5 * 1024 * 1024)

    @ws.on
    async def open(socket: WebSocketHandler) -> None:
        socket.emit("big", {"text": big})  # sent on connect, as the report did

    async with serve(tornado_settings=reader_settings) as server, server.connect("/big") as client:
        assert (await client.wait_for("big", timeout=30))["text"] == big
        assert client.close_code is None
    assert delivery.dropped() == {}


async def test_the_1009_close_reaches_the_client_every_time(reader_settings: dict[str, Any]) -> None:
    # A client still sending a too large message when the server closes: unless the server reads
    # what it still sends, its kernel resets the connection and the client never sees the close.
    echo_app(limits=Limits(max_message_size=64 * 1024))
    async with serve(tornado_settings=reader_settings) as server:
        codes = [await asyncio.to_thread(_send_too_large_then_read_close, server.port) for _ in range(20)]
    assert codes == [1009] * 20


def _send_too_large_then_read_close(port: int) -> int | None:
    """A blocking client that writes a 4 MiB message whole before it reads anything."""
    import base64
    import os
    import socket
    import struct

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws/limited HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(4096)
        rest = response.split(b"\r\n\r\n", 1)[1]
        size = 4 * 1024 * 1024
        try:  # a zero mask leaves the payload as it is
            sock.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, size) + b"\0\0\0\0" + b"x" * size)
            while len(rest) < 4:
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                rest += chunk
        except OSError:  # reset by the server: the close frame was lost with it
            return None
        if rest[0] & 0x0F != 0x8:
            return None
        return int(struct.unpack("!H", rest[2:4])[0])


def test_the_security_page_states_the_defaults() -> None:
    """docs/security.rst lists each limit with its default, and which ones are on by default."""
    page = (Path(__file__).parent.parent / "docs" / "security.rst").read_text()
    defaults = Limits()
    rows = {
        "max_message_size": f"{defaults.max_message_size // (1024 * 1024)} MiB",
        "ping_interval": f"{defaults.ping_interval:g} s",
        "ping_timeout": f"{defaults.ping_timeout:g} s",
        "max_backlog": f"{defaults.max_backlog // (1024 * 1024)} MiB",
        "max_rate": "off (None)" if defaults.max_rate is None else f"{defaults.max_rate:g}",
    }
    for name, default in rows.items():
        assert re.search(rf"``{name}``\s+{re.escape(default)}\s", page), (name, default)
    off = [name for name in rows if getattr(defaults, name) is None]
    assert off == ["max_rate"]
    assert "all of them\nare on by default except ``max_rate``" in page
    assert "every limit below is on by default" not in page.lower()
