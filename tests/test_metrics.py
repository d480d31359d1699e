"""Metrics counted over real sockets, and their Prometheus text parsed back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
from prometheus_client.parser import text_string_to_metric_families

from tests.redis_server import RedisServer
from tests.servers import backplane_script, connect_when_up, free_port, running
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


def _snapshot(pid: int, connections: int, lobby: int, drops: dict[str, int]) -> dict[str, Any]:
    latency = {"buckets": [[0.01, 1], [float("inf"), 2]], "sum": 0.5, "count": 2}
    path = {key: 1 for key in ("connections_total", "users", "frames_in", "bytes_in", "frames_out")}
    path |= {"bytes_out": 10, "handler_errors": 0, "backlog_bytes": 0, "connections": connections}
    path |= {"rooms": {"lobby": lobby}, "drops": drops, "latency": latency}
    return {
        "process": {"pid": pid},
        "backplane": {"kind": "RedisBroker", "state": "connected"},
        "paths": {"/chat": path},
        "drops_elsewhere": {},
        "in_flight": 1,
    }


def test_aggregate_adds_up_processes() -> None:
    total = metrics.aggregate(
        [_snapshot(1, 2, 1, {"connection_closed": 1}), _snapshot(2, 3, 2, {"slow_consumer": 4})]
    )
    chat = total["paths"]["/chat"]
    assert (chat["connections"], chat["bytes_out"], chat["rooms"]) == (5, 20, {"lobby": 3})
    assert chat["drops"] == {"connection_closed": 1, "slow_consumer": 4}
    assert chat["latency"] == {"buckets": [[0.01, 2], [float("inf"), 4]], "sum": 1.0, "count": 4}
    assert [p["pid"] for p in total["processes"]] == [1, 2]
    assert total["in_flight"] == 2


def test_everywhere_needs_a_cross_process_backplane() -> None:
    with pytest.raises(RuntimeError, match="redis://"):
        metrics.everywhere()


async def test_metrics_of_every_process_add_up_through_redis(tmp_path: Path) -> None:
    ports = free_port(), free_port()
    url = "ws://127.0.0.1:{}/ws/chat".format
    env = {"TWS_PRESENCE_TTL": "1.5"}  # shared every half second
    with RedisServer.running(tmp_path) as redis_server:
        args = [["-m", "tests.backplane_app", "serve", str(port), redis_server.url] for port in ports]
        async with running(args[0], env=env), running(args[1], env=env):
            clients = [await connect_when_up(url(port)) for port in (ports[0], ports[1], ports[1])]
            assert await clients[0].request("join", {"room": "lobby"}) == ["lobby"]
            assert await clients[1].request("join", {"room": "lobby"}) == ["lobby"]

            async def added_up() -> dict[str, Any]:
                return dict(json.loads(await backplane_script("stats", redis_server.url)))

            deadline = asyncio.get_running_loop().time() + 20
            while True:
                total = await added_up()
                chat = total["paths"].get("/chat", {})
                if chat.get("connections") == 3 and chat.get("rooms") == {"lobby": 2}:
                    break
                assert asyncio.get_running_loop().time() < deadline, total
                await asyncio.sleep(0.2)
            assert len(total["processes"]) == 2
            assert chat["frames_in"] >= 2  # the two joins
            for client in clients:
                client.close()
