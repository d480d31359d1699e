"""Live metrics of this process: counters kept on the hot path, gauges read when asked.

Counting is a few integer additions per frame; everything else (connections, rooms, backlog,
drops, the backplane) is read at snapshot time, so a process that nobody scrapes pays nearly
nothing. `snapshot` gives plain data for the admin page and ``websocket_stats``;
`tornado_websockets.prometheus` turns it into Prometheus text.
"""

from __future__ import annotations

import bisect
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from tornado_websockets import delivery

__all__ = ["LATENCY_BUCKETS", "Histogram", "PathMetrics", "aggregate", "everywhere", "snapshot"]

#: Upper bounds, in seconds, of the event-function latency histogram.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_STARTED = time.time()


@dataclass(slots=True)
class Histogram:
    """A cumulative-bucket histogram, as Prometheus has them."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at or below it)`` pairs, ending with ``(inf, count)``."""
        pairs: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


@dataclass(slots=True)
class PathMetrics:
    """The counters of one `WebSocket` path in this process."""

    frames_in: int = 0
    bytes_in: int = 0
    frames_out: int = 0
    bytes_out: int = 0
    connections_total: int = 0
    handler_errors: int = 0
    latency: Histogram = field(default_factory=Histogram)


#: The last bucket's upper bound in JSON: strict JSON (RFC 8259) has no Infinity; Prometheus's name.
INFINITE_BOUND = "+Inf"


def json_bound(bound: float) -> float | str:
    """A bucket's upper bound as strict JSON has it: the infinite one is `INFINITE_BOUND`."""
    return INFINITE_BOUND if math.isinf(bound) else bound


def snapshot() -> dict[str, Any]:
    """Every metric of this process as plain data (JSON-ready)."""
    from tornado_websockets.tornadowrapper import TornadoWrapper

    drops: dict[str, dict[str, int]] = {}
    for (reason, path), count in delivery.dropped().items():
        drops.setdefault(path, {})[reason] = count
    paths = {}
    for path, ws in sorted(TornadoWrapper.websockets.items()):
        counters = ws.metrics
        paths[path] = {
            "connections": len(ws.handlers),
            "connections_total": counters.connections_total,
            "rooms": {room: len(ws.rooms.members(room)) for room in ws.rooms},
            "users": len(ws.users),
            "frames_in": counters.frames_in,
            "bytes_in": counters.bytes_in,
            "frames_out": counters.frames_out,
            "bytes_out": counters.bytes_out,
            "handler_errors": counters.handler_errors,
            "latency": {
                "buckets": [[json_bound(bound), count] for bound, count in counters.latency.cumulative()],
                "sum": counters.latency.total,
                "count": counters.latency.count,
            },
            "backlog_bytes": sum(handler.backlog for handler in ws.handlers),
            "drops": drops.pop(path, {}),
        }
    broker = TornadoWrapper.broker
    return {
        "process": {"pid": os.getpid(), "started": _STARTED, "time": time.time(), "broker": broker.id},
        "paths": paths,
        "drops_elsewhere": drops,  # paths this process does not serve (emits arriving for them)
        "backplane": {"kind": type(broker).__name__, "state": getattr(broker, "state", "local")},
        "in_flight": TornadoWrapper.in_flight,
    }


#: The per-path figures that add up across processes.
_SUMMED = (
    "connections",
    "connections_total",
    "users",
    "frames_in",
    "bytes_in",
    "frames_out",
    "bytes_out",
    "handler_errors",
    "backlog_bytes",
)


def aggregate(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """The snapshots of several processes added up: the same shape as `snapshot`, per path.

    Counts, rooms' sizes, drops and the latency histogram are summed; ``users`` is the sum of
    each process's users (a user connected to two processes counts twice); ``processes`` lists
    where the figures came from.
    """
    paths: dict[str, dict[str, Any]] = {}
    elsewhere: dict[str, dict[str, int]] = {}
    for one in snapshots:
        for path, values in one["paths"].items():
            into = paths.setdefault(
                path,
                {
                    **dict.fromkeys(_SUMMED, 0),
                    "rooms": {},
                    "drops": {},
                    "latency": {
                        "buckets": [[b, 0] for b, _ in values["latency"]["buckets"]],
                        "sum": 0.0,
                        "count": 0,
                    },
                },
            )
            for key in _SUMMED:
                into[key] += values[key]
            _add(into["rooms"], values["rooms"])
            _add(into["drops"], values["drops"])
            latency = into["latency"]
            for pair, (_, count) in zip(latency["buckets"], values["latency"]["buckets"], strict=True):
                pair[1] += count
            latency["sum"] += values["latency"]["sum"]
            latency["count"] += values["latency"]["count"]
        for path, reasons in one.get("drops_elsewhere", {}).items():
            _add(elsewhere.setdefault(path, {}), reasons)
    return {
        "processes": [one["process"] | {"backplane": one["backplane"]} for one in snapshots],
        "paths": dict(sorted(paths.items())),
        "drops_elsewhere": elsewhere,
        "in_flight": sum(one["in_flight"] for one in snapshots),
    }


def _add(into: dict[str, int], values: dict[str, int]) -> None:
    for key, value in values.items():
        into[key] = into.get(key, 0) + value


def everywhere() -> dict[str, Any]:
    """`aggregate` of every server process the backplane reaches, from any thread or process.

    In a server process, this process's own figures are live and the others' are those they
    last shared (a few seconds old); elsewhere (a ``manage.py`` command), all are shared ones.

    :raise RuntimeError: the backplane reaches no other process (the in-process default).
    """
    from tornado_websockets.tornadowrapper import TornadoWrapper

    broker = TornadoWrapper.broker
    if not broker.cross_process:
        raise RuntimeError(
            "Metrics of every process need a cross-process backplane (TORNADO['backplane'] = 'redis://...')."
        )
    shared = [one for one in broker.snapshots_sync() if one["process"].get("broker") != broker.id]
    local = [snapshot()] if TornadoWrapper.io_loop is not None else []
    return aggregate(local + shared)
