"""Limits over real sockets: message size, keepalive, slow consumers, inbound rate."""

from __future__ import annotations

import asyncio
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
        echoed = [frame.data["n"] for frame in client._buffer if frame.event == "echo"]
        assert echoed == list(range(5))  # the burst was served, in order, then nothing more
