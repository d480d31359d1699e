"""Prometheus text for the metrics of this process (the ``metrics`` extra: prometheus_client).

Mount `MetricsHandler` at a URL of your Tornado application, or, with Django, use the view the
Django integration provides. Metrics are read at scrape time from `tornado_websockets.metrics`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import tornado.web

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    from prometheus_client.registry import Collector
except ImportError as error:  # pragma: no cover - exercised by users without the extra
    raise ImportError(
        "Prometheus metrics need prometheus_client: pip install 'django-tornado-websockets[metrics]'"
    ) from error

from tornado_websockets import metrics

__all__ = ["CONTENT_TYPE", "MetricsHandler", "WebSocketCollector", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class WebSocketCollector(Collector):
    """Reads `tornado_websockets.metrics.snapshot` each time Prometheus scrapes."""

    def collect(self) -> Iterator[Any]:
        """Yield every metric family."""
        data = metrics.snapshot()
        labels = ["path"]
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "connections": GaugeMetricFamily("tws_open_connections", "Open connections", labels=labels),
            "users": GaugeMetricFamily("tws_users", "Users with an open connection", labels=labels),
            "rooms": GaugeMetricFamily("tws_rooms", "Rooms with at least one member", labels=labels),
            "backlog_bytes": GaugeMetricFamily(
                "tws_backlog_bytes", "Bytes not yet taken by sockets", labels=labels
            ),
            "connections_total": CounterMetricFamily(
                "tws_connections_accepted", "Connections accepted", labels=labels
            ),
            "frames_in": CounterMetricFamily("tws_frames_received", "Frames received", labels=labels),
            "bytes_in": CounterMetricFamily("tws_received_bytes", "Bytes received", labels=labels),
            "frames_out": CounterMetricFamily("tws_frames_sent", "Frames written to sockets", labels=labels),
            "bytes_out": CounterMetricFamily("tws_sent_bytes", "Bytes written to sockets", labels=labels),
            "handler_errors": CounterMetricFamily(
                "tws_handler_errors", "Event functions that raised", labels=labels
            ),
        }
        room_size = GaugeMetricFamily("tws_room_members", "Members of a room", labels=["path", "room"])
        drops = CounterMetricFamily("tws_frames_dropped", "Frames not delivered", labels=["path", "reason"])
        latency = HistogramMetricFamily("tws_handler_seconds", "Event function latency", labels=labels)
        for path, values in data["paths"].items():
            for key, family in families.items():
                family.add_metric([path], len(values[key]) if key == "rooms" else values[key])
            for room, size in values["rooms"].items():
                room_size.add_metric([path, room], size)
            for reason, count in values["drops"].items():
                drops.add_metric([path, reason], count)
            buckets = [(_bound(bound), count) for bound, count in values["latency"]["buckets"]]
            latency.add_metric([path], buckets, values["latency"]["sum"])
        for path, reasons in data["drops_elsewhere"].items():
            for reason, count in reasons.items():
                drops.add_metric([path, reason], count)
        in_flight = GaugeMetricFamily("tws_in_flight", "Event functions running now")
        in_flight.add_metric([], data["in_flight"])
        # One series, 1, labelled with the backplane's kind and state: alert on state="unreachable".
        backplane = GaugeMetricFamily(
            "tws_backplane_state", "The backplane's kind and state, as labels", labels=["kind", "state"]
        )
        backplane.add_metric([data["backplane"]["kind"], data["backplane"]["state"]], 1)
        yield from families.values()
        yield from (room_size, drops, latency, in_flight, backplane)


def _bound(value: float | str | None) -> str:
    # The last bound: "+Inf" in snapshots; None from a process that shared it through JSON as
    # an older version did (its infinity became null).
    if value is None or value == "+Inf" or value == float("inf"):
        return "+Inf"
    return repr(value)


def render() -> bytes:
    """The Prometheus text exposition of this process's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WebSocketCollector())
    return bytes(generate_latest(registry))


class MetricsHandler(tornado.web.RequestHandler):
    """``GET`` serves `render` (mount it at ``/metrics``; protect it as you would any admin URL)."""

    def get(self) -> None:
        """Serve the metrics."""
        self.set_header("Content-Type", CONTENT_TYPE)
        self.write(render())
