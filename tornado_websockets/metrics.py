"""Live metrics of this process: `snapshot` (plain data for the admin page and
``websocket_stats``), `aggregate` and `everywhere` (every process the backplane reaches).

The counters themselves live in `tornado_websockets.pathmetrics`, beside the connections that
count; `tornado_websockets.prometheus` turns a snapshot into Prometheus text.
"""

from __future__ import annotations

from typing import Any

from tornado_websockets.pathmetrics import INFINITE_BOUND, LATENCY_BUCKETS, Histogram, PathMetrics, json_bound
from tornado_websockets.server import Server, default_server

__all__ = [
    "INFINITE_BOUND",
    "LATENCY_BUCKETS",
    "Histogram",
    "PathMetrics",
    "aggregate",
    "everywhere",
    "json_bound",
    "snapshot",
]


def snapshot(server: Server | None = None) -> dict[str, Any]:
    """Every metric of ``server`` (the default server) in this process as plain data (JSON-ready)."""
    return (server if server is not None else default_server()).snapshot()


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


def everywhere(server: Server | None = None) -> dict[str, Any]:
    """`aggregate` of every server process the backplane reaches, from any thread or process.

    In a server process, this process's own figures are live and the others' are those they
    last shared (a few seconds old); elsewhere (a ``manage.py`` command), all are shared ones.

    :raise RuntimeError: the backplane reaches no other process (the in-process default).
    """
    server = server if server is not None else default_server()
    broker = server.broker
    if not broker.cross_process:
        raise RuntimeError(
            "Metrics of every process need a cross-process backplane (TORNADO['backplane'] = 'redis://...')."
        )
    shared = [one for one in broker.snapshots_sync() if one["process"].get("broker") != broker.id]
    local = [server.snapshot()] if server.io_loop is not None else []
    return aggregate(local + shared)
