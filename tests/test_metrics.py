"""Metrics counted over real sockets, and their Prometheus text parsed back."""

from __future__ import annotations

import asyncio
from typing import Any

import tornado.httpclient
from prometheus_client.parser import text_string_to_metric_families

from tornado_websockets import metrics
from tornado_websockets.metrics import Histogram
from tornado_websockets.prometheus import CONTENT_TYPE, MetricsHandler
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram()
    for value in (0.0005, 0.003, 0.003, 10.0):
        histogram.observe(value)
    pairs = dict(histogram.cumulative())
    assert (pairs[0.001], pairs[0.005], pairs[5.0], pairs[float("inf")]) == (1, 3, 3, 4)
    assert histogram.count == 4


def chat() -> WebSocket:
    ws = WebSocket("/metered")

    @ws.on
    async def join(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.join(data["room"])
        socket.emit("joined", data)

    @ws.on
    async def boom() -> None:
        raise RuntimeError("counted")

    return ws


async def test_snapshot_counts_frames_rooms_errors_and_latency() -> None:
    ws = chat()
    async with serve() as server, server.connect("/metered") as first, server.connect("/metered") as second:
        for client, room in ((first, "a"), (second, "a")):
            await client.emit("join", {"room": room})
            await client.wait_for("joined")
        await first.emit("boom")
        await first.wait_for("error")
        ws.emit("news", "hello")
        await second.wait_for("news")
        await first.wait_for("news")
        data = metrics.snapshot()["paths"]["/metered"]
    assert data["connections"] == 2
    assert data["connections_total"] == 2
    assert data["rooms"] == {"a": 2}
    assert data["frames_in"] == 3
    assert data["frames_out"] == 2 + 1 + 2  # two joined, one error, the news to both
    assert data["bytes_out"] > data["frames_out"] * 10
    assert data["handler_errors"] == 1
    assert data["latency"]["count"] == 3


async def test_prometheus_text_parses_and_carries_the_figures() -> None:
    chat()
    async with serve([("/metrics", MetricsHandler)]) as server:
        async with server.connect("/metered") as client:
            await client.emit("join", {"room": "lobby"})
            await client.wait_for("joined")
            response = await tornado.httpclient.AsyncHTTPClient().fetch(server.http_url("/metrics"))
        await asyncio.sleep(0)
    assert response.headers["Content-Type"] == CONTENT_TYPE
    families = {family.name: family for family in text_string_to_metric_families(response.body.decode())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[("tws_open_connections", (("path", "/metered"),))] == 1
    assert samples[("tws_users", (("path", "/metered"),))] == 0  # no user: an anonymous client
    assert samples[("tws_backplane_state", (("kind", "Broker"), ("state", "local")))] == 1
    assert samples[("tws_connections_accepted_total", (("path", "/metered"),))] == 1
    assert samples[("tws_room_members", (("path", "/metered"), ("room", "lobby")))] == 1
    assert samples[("tws_frames_received_total", (("path", "/metered"),))] == 1
    assert samples[("tws_handler_seconds_count", (("path", "/metered"),))] == 1
    assert families["tws_handler_seconds"].type == "histogram"
