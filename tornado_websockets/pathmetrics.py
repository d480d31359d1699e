"""The counters of a path, kept on the hot path, and the snapshot of a server's paths.

Counting is a few integer additions per frame; everything else (connections, rooms, backlog,
drops, the backplane) is read at snapshot time, so a process that nobody scrapes pays nearly
nothing. `tornado_websockets.metrics` is the public face: ``metrics.snapshot()``,
``aggregate`` and ``everywhere``; `tornado_websockets.prometheus` turns them into Prometheus text.
"""

from __future__ import annotations

import bisect
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tornado_websockets import delivery

if TYPE_CHECKING:
    from tornado_websockets.server import Server

__all__ = ["INFINITE_BOUND", "LATENCY_BUCKETS", "Histogram", "PathMetrics", "json_bound", "snapshot_of"]

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


def snapshot_of(server: Server) -> dict[str, Any]:
    """Every metric of ``server`` in this process as plain data (JSON-ready)."""
    drops: dict[str, dict[str, int]] = {}
    for (reason, path), count in delivery.dropped().items():
        drops.setdefault(path, {})[reason] = count
    paths = {}
    for path, ws in sorted(server.websockets.items()):
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
    broker = server.broker
    return {
        "process": {"pid": os.getpid(), "started": _STARTED, "time": time.time(), "broker": broker.id},
        "paths": paths,
        "drops_elsewhere": drops,  # paths this process does not serve (emits arriving for them)
        "backplane": {"kind": type(broker).__name__, "state": getattr(broker, "state", "local")},
        "in_flight": server.in_flight,
    }
