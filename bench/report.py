"""Results JSON -> medians, ratios, target verdicts and the Markdown of ``bench/RESULTS.md``.

Pure data in, text out: the smoke test feeds it a made-up run.
"""

from __future__ import annotations

import datetime
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["METRICS", "Metric", "Summary", "compare", "load", "render", "summarize"]

PEERS = ("socketio", "channels")
#: Hand-written servers on the two other asyncio WebSocket stacks (issue 27), beside raw Tornado.
RAW_PEERS = ("aiohttp", "websockets")
#: Our variants set against raw Tornado and every peer in the ratios.
OURS = ("ours", "ours-uvloop", "ours-tornado-stream", "ours-sync")
LABELS = {
    "raw": "raw Tornado",
    "aiohttp": "raw aiohttp",
    "websockets": "raw websockets",
    "ours": "ours (async def)",
    "ours-uvloop": "ours (async def, uvloop)",
    "ours-tornado-stream": "ours (async def, Tornado's stream)",
    "ours-sync": "ours (plain def)",
    "ours-onloop": "ours (plain def, blocking=False)",
    "ours-typed": "ours (typed echo)",
    "ours-tornado-reader": "ours (Tornado's reader)",
    "socketio": "python-socketio",
    "channels": "Channels",
    "ours-single": "ours, one channel (one Redis)",
    "ours-sharded": "ours, sharded (Redis Cluster)",
}


@dataclass(frozen=True, slots=True)
class Metric:
    """How a metric reads: its title, unit, and whether more is better."""

    title: str
    unit: str
    higher_is_better: bool
    digits: int = 0


METRICS = {
    "echo_rps": Metric("Echo round trips per second", "round trips/s", True),
    "echo_cpu_us": Metric("Echo: server CPU time per round trip", "µs", False, 1),
    "echo_p50_ms": Metric("Echo latency p50", "ms", False, 3),
    "echo_p99_ms": Metric("Echo latency p99", "ms", False, 3),
    "fairness_p50_ms": Metric("Another client's round trip during a flood, p50", "ms", False, 3),
    "fairness_p99_ms": Metric("Another client's round trip during a flood, p99", "ms", False, 3),
    "fairness_flood_per_s": Metric("The flooding client's echoes served per second", "echoes/s", True),
    "post_p50_ms": Metric("Emit then reply: round trip p50", "ms", False, 3),
    "post_p99_ms": Metric("Emit then reply: round trip p99", "ms", False, 3),
    "post_rps": Metric("Emit then reply: round trips per second, one client", "round trips/s", True),
    "fanout_deliveries_per_s": Metric("Fan-out deliveries per second", "deliveries/s", True),
    "fanout_cpu_us": Metric("Fan-out: server CPU time per delivery", "µs", False, 2),
    "fanout_last_ms": Metric("Fan-out: time until the last client has it", "ms", False, 1),
    "fanout_first_ms": Metric("Fan-out: time until the first client has it", "ms", False, 2),
    "connect_per_s": Metric("Connections opened per second", "connections/s", True),
    "connect_cpu_us": Metric("Server CPU time per connection opened", "µs", False),
    "rss_kib_per_conn": Metric("RSS per idle connection", "KiB", False, 1),
    "redis_p50_ms": Metric("Cross-process (Redis) fan-out latency p50", "ms", False, 2),
    "redis_p99_ms": Metric("Cross-process (Redis) fan-out latency p99", "ms", False, 2),
    "cross_deliveries_per_s": Metric("Cross-process fan-out deliveries per second", "deliveries/s", True),
    "cross_p99_ms": Metric("Cross-process fan-out latency p99", "ms", False, 2),
    "cross_lost": Metric("Cross-process fan-out: frames lost or duplicated", "frames", False),
    "shard_deliveries_per_s": Metric(
        "Sharding: deliveries per second, every room at once", "deliveries/s", True
    ),
    "shard_frames_per_process": Metric(
        "Sharding: frames each process receives (from its subscriptions)", "frames", False
    ),
    "shard_redis_out_kib_per_process": Metric("Sharding: bytes Redis sent, per process", "KiB", False, 1),
    "shard_redis_cpu_ms": Metric("Sharding: Redis CPU time over the rounds (all nodes)", "ms", False, 1),
    "shard_lost": Metric("Sharding: frames lost or duplicated", "frames", False),
}


def load(path: Path) -> dict[str, Any]:
    """Read a results file written by the harness."""
    results: dict[str, Any] = json.loads(path.read_text())
    return results


#: The scenario (as the harness names it in a failure) each metric comes from, by its prefix.
SCENARIOS = {
    "echo": "echo",
    "fairness": "fairness",
    "post": "post",
    "fanout": "fanout",
    "rss": "fanout",
    "connect": "fanout",
    "redis": "redis",
    "cross": "cross",
    "shard": "sharding",
}
#: The plan's parameter of a scenario's figures, when a failure left none of them.
PLAN_PARAMS = {
    "echo": "echo_clients",
    "fairness": "fairness_window",
    "redis": "redis_receivers",
    "cross": "cross_receivers",
    "sharding": "shard_processes",
}
Key = tuple[str, str, int]


class Summary:
    """The median of each (server, metric, param) over the repetitions, and ratios between servers.

    A figure of a run that failed (``failures``: a repetition without it, or a fan-out round still
    incomplete at its timeout, whose figures are only upper bounds) has no median: it reads
    "failed", never as a number, and its ratios are not computed.
    """

    def __init__(
        self,
        measurements: Iterable[dict[str, Any]],
        failures: Iterable[dict[str, Any]] = (),
        plan: dict[str, Any] | None = None,
    ) -> None:
        values: dict[Key, list[float]] = defaultdict(list)
        for m in measurements:
            values[m["server"], m["metric"], int(m["param"])].append(float(m["value"]))
        self.values = dict(values)
        self.failed = _failed_keys(self.values, list(failures), plan or {})
        self.medians = {key: statistics.median(v) for key, v in values.items() if key not in self.failed}

    def median(self, server: str, metric: str, param: int) -> float | None:
        return self.medians.get((server, metric, param))

    def is_failed(self, server: str, metric: str, param: int) -> bool:
        """Whether that figure comes from a failed run (shown as "failed")."""
        return (server, metric, param) in self.failed

    def params(self, metric: str) -> list[int]:
        return sorted({param for (_, name, param) in [*self.medians, *self.failed] if name == metric})

    def servers(self) -> list[str]:
        present = {server for (server, _, _) in [*self.medians, *self.failed]}
        return [name for name in LABELS if name in present] + sorted(present - set(LABELS))

    def cell(self, server: str, metric: str, param: int) -> str:
        """The figure as the tables show it: the median, "failed", or "-" when not measured."""
        if self.is_failed(server, metric, param):
            return "failed"
        return _number(self.median(server, metric, param), METRICS[metric].digits)

    def ratio(self, server: str, other: str, metric: str, param: int) -> str:
        """`advantage` as a table shows it ("failed" when either figure is)."""
        if self.is_failed(server, metric, param) or self.is_failed(other, metric, param):
            return "failed"
        return _ratio(self.advantage(server, other, metric, param))

    def advantage(self, server: str, other: str, metric: str, param: int) -> float | None:
        """How many times better ``server`` is than ``other`` (above 1: better, whatever the unit)."""
        mine, theirs = self.median(server, metric, param), self.median(other, metric, param)
        if mine is None or theirs is None or mine <= 0 or theirs <= 0:
            return None
        return mine / theirs if METRICS[metric].higher_is_better else theirs / mine


def _failed_keys(
    values: dict[Key, list[float]], failures: list[dict[str, Any]], plan: dict[str, Any]
) -> set[Key]:
    """The figures of ``values`` (and those a failure left out) that come from a failed run."""
    repetitions = int(plan.get("repetitions") or 1)
    failed: set[Key] = set()
    for failure in failures:
        server, scenario = failure["server"], str(failure["scenario"])
        name, _, size = scenario.partition(" ")  # "fanout 5000": the size it was for
        for metric in METRICS:
            if SCENARIOS.get(metric.partition("_")[0]) != name:
                continue
            params = {p for (s, m, p) in values if s == server and m == metric}
            if size.isdigit():
                params = {int(size)}
            else:
                planned = plan.get(PLAN_PARAMS.get(name, ""), ())
                params |= set(planned if isinstance(planned, (list, tuple)) else [planned])
            for param in params:
                key = (server, metric, int(param))
                # A repetition without this figure, or fan-out rounds whose figures are only upper
                # bounds (a round incomplete at its timeout); the idle RSS before them stands.
                if len(values.get(key, ())) < repetitions or metric.startswith("fanout_"):
                    failed.add(key)
    return failed


def summarize(results: dict[str, Any]) -> Summary:
    """The `Summary` of a harness run."""
    return Summary(results["measurements"], results.get("failures", ()), results.get("plan"))


def _number(value: float | None, digits: int) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _metric_table(summary: Summary, metric: str, param_name: str) -> list[str]:
    spec = METRICS[metric]
    params = summary.params(metric)
    servers = [
        s
        for s in summary.servers()
        if any(summary.median(s, metric, p) is not None or summary.is_failed(s, metric, p) for p in params)
    ]
    rows = [[f"{param:,}"] + [summary.cell(s, metric, param) for s in servers] for param in params]
    if not rows:
        return []
    return [
        f"**{spec.title}** ({spec.unit}, median)",
        "",
        *_table([param_name, *(LABELS.get(s, s) for s in servers)], rows),
        "",
    ]


def _ratio_table(summary: Summary, metrics: list[tuple[str, str]]) -> list[str]:
    others = [s for s in ("raw", *RAW_PEERS, *PEERS) if s in summary.servers()]
    ours = [s for s in OURS if s in summary.servers()]
    rows = []
    for metric, param_name in metrics:
        for param in summary.params(metric):
            for mine in ours:
                cells = [summary.ratio(mine, other, metric, param) for other in others]
                rows.append([f"{METRICS[metric].title}, {param:,} {param_name}", LABELS[mine], *cells])
    header = ["figure", "server", *(f"vs {LABELS[o]}" for o in others)]
    return _table(header, rows) if rows else []


def _echo_pair(
    summary: Summary,
    first: str,
    second: str,
    better: str,
    metrics: tuple[str, ...] = ("echo_rps", "echo_cpu_us"),
) -> list[list[str]]:
    """Rows of two variants side by side, with ``better``'s advantage over the other."""
    other = second if better == first else first
    return [
        [
            f"{METRICS[metric].title}, {param:,} clients",
            summary.cell(first, metric, param),
            summary.cell(second, metric, param),
            summary.ratio(better, other, metric, param),
        ]
        for metric in metrics
        for param in summary.params(metric)
    ]


def _loop_table(summary: Summary) -> list[str]:
    """Ours on the default asyncio loop and on uvloop (``run --uvloop``), issue 27."""
    if "ours-uvloop" not in summary.servers() or "ours" not in summary.servers():
        return []
    metrics = ("echo_rps", "echo_cpu_us", "fanout_deliveries_per_s", "fanout_cpu_us", "rss_kib_per_conn")
    rows = _echo_pair(summary, "ours", "ours-uvloop", better="ours-uvloop", metrics=metrics)
    return [
        "",
        "## Event loop: asyncio and uvloop",
        "",
        "The same server (`async def` functions) with `TORNADO['loop']` / `run(loop=...)` left at",
        "`asyncio`, then set to `uvloop`.",
        "",
        *_table(["figure", "asyncio", "uvloop", "uvloop vs asyncio (above 1: uvloop is better)"], rows),
    ]


def _validation_table(summary: Summary) -> list[str]:
    """What validating the echo's data costs: the typed echo beside the untyped one (issue 10)."""
    if "ours-typed" not in summary.servers() or "ours" not in summary.servers():
        return []
    rows = _echo_pair(summary, "ours", "ours-typed", better="ours-typed")
    return [
        "",
        "## Typed payloads: what validation costs",
        "",
        "The typed echo validates `{n: int, text: str}` into a `msgspec.Struct` before the call; the",
        "untyped one gets the dict as decoded. Untyped functions skip validation entirely.",
        "",
        *_table(["figure", "untyped", "typed", "typed vs untyped (above 1: typed is better)"], rows),
    ]


def _reader_table(summary: Summary) -> list[str]:
    """Our bulk frame reader on (the default) and off (Tornado's reader), issue 16."""
    if "ours-tornado-reader" not in summary.servers() or "ours" not in summary.servers():
        return []
    rows = _echo_pair(summary, "ours", "ours-tornado-reader", better="ours")
    return [
        "",
        "## Frame reader: ours and Tornado's",
        "",
        "Ours reads what the socket holds and parses every frame of it in one pass",
        "(`tornado_websockets.framereader`); Tornado's awaits the stream four times per frame.",
        "",
        *_table(
            ["figure", "our reader", "Tornado's reader", "ours vs Tornado's (above 1: ours is better)"], rows
        ),
    ]


def _peers_table(summary: Summary) -> list[str]:
    """Issue 27's table: every raw server and ours, wall-clock figures beside CPU time per operation."""
    present = summary.servers()
    if not any(peer in present for peer in RAW_PEERS):
        return []
    servers = [s for s in ("raw", *RAW_PEERS, *OURS) if s in present]
    clients = summary.params("echo_rps")
    size = max(summary.params("fanout_cpu_us"), default=0)
    idle = max(summary.params("rss_kib_per_conn"), default=0)

    def several(server: str, metric: str) -> str:
        return " / ".join(summary.cell(server, metric, c) for c in clients) or "-"

    each = " / ".join(f"c{c}" for c in clients)
    header = [
        "server",
        f"echo round trips/s {each}",
        f"echo CPU per round trip {each} (µs)",
        f"fan-out {size:,}: deliveries/s",
        f"fan-out {size:,}: CPU per delivery (µs)",
        f"idle KiB/conn ({idle:,})",
        "connections/s (server CPU per connection, µs)",
    ]
    rows = [
        [
            LABELS.get(server, server),
            several(server, "echo_rps"),
            several(server, "echo_cpu_us"),
            summary.cell(server, "fanout_deliveries_per_s", size),
            summary.cell(server, "fanout_cpu_us", size),
            summary.cell(server, "rss_kib_per_conn", idle),
            f"{summary.cell(server, 'connect_per_s', idle)} ({summary.cell(server, 'connect_cpu_us', idle)})",
        ]
        for server in servers
    ]
    return [
        "## Raw peers: Tornado, aiohttp and websockets by hand, and ours",
        "",
        "The raw servers do the bench's work by hand with nothing else (raw aiohttp and raw websockets",
        "with the standard library's json, raw Tornado with orjson as ours); CPU time per operation",
        'beside each wall-clock figure. A run that failed reads "failed" (see the list below).',
        "",
        *_table(header, rows),
        "",
    ]


def _issue27_targets(summary: Summary, check: Any) -> None:
    """Issue 27: ours (on each loop measured) against the hand-written aiohttp and websockets servers."""
    if not any(peer in summary.servers() for peer in RAW_PEERS):
        return
    many = [c for c in summary.params("echo_rps") if c >= 10]
    size = max(summary.params("fanout_cpu_us"), default=0)
    idle = max(summary.params("rss_kib_per_conn"), default=0)
    for ours in ("ours", "ours-uvloop"):
        if ours not in summary.servers():
            continue
        on = "" if ours == "ours" else " (uvloop)"
        check(
            f"Echo server CPU per round trip at most raw aiohttp's at 10 and 100 clients{on}",
            [(f"{c} cl.", summary.advantage(ours, "aiohttp", "echo_cpu_us", c)) for c in many],
            1.0,
        )
        check(
            f"Echo round trips/s at least the fastest raw server at 10 and 100 clients{on}",
            [
                (f"{LABELS[peer]} {c} cl.", summary.advantage(ours, peer, "echo_rps", c))
                for peer in ("raw", *RAW_PEERS)
                for c in many
            ],
            1.0,
        )
        check(
            f"Fan-out CPU per delivery at most half raw aiohttp's at {size:,} clients{on}",
            [(f"{size:,}", summary.advantage(ours, "aiohttp", "fanout_cpu_us", size))],
            2.0,
        )
        check(
            f"Idle memory per connection at most raw Tornado's{on}",
            [(f"{idle:,}", summary.advantage(ours, "raw", "rss_kib_per_conn", idle))],
            1.0,
        )
        check(
            f"Echo at one client at least 1.2x raw Tornado's round trips{on}",
            [("1 cl.", summary.advantage(ours, "raw", "echo_rps", 1))],
            1.2,
        )


def targets(summary: Summary) -> list[tuple[str, bool | None, str]]:
    """The issue's targets: (target, met (None: not measured), the figures behind the verdict)."""
    verdicts: list[tuple[str, bool | None, str]] = []

    def check(name: str, ratios: list[tuple[str, float | None]], floor: float) -> None:
        known = [(label, r) for label, r in ratios if r is not None]
        if not known:
            verdicts.append((name, None, "not measured"))
            return
        met = all(r >= floor for _, r in known) and len(known) == len(ratios)
        verdicts.append((name, met, ", ".join(f"{label} {r:.2f}x" for label, r in known)))

    echo = summary.params("echo_rps")
    check(
        "Echo at least 0.9x raw Tornado",
        [(f"{c} cl.", summary.advantage("ours", "raw", "echo_rps", c)) for c in echo],
        0.9,
    )
    for peer in PEERS:
        check(
            f"Echo at least 3x {LABELS[peer]}",
            [(f"{c} cl.", summary.advantage("ours", peer, "echo_rps", c)) for c in echo],
            3.0,
        )
    size = max(summary.params("fanout_deliveries_per_s"), default=0)
    for peer in PEERS:
        check(
            f"Fan-out deliveries/s at least 3x {LABELS[peer]} at {size:,} clients",
            [(f"{size:,}", summary.advantage("ours", peer, "fanout_deliveries_per_s", size))],
            3.0,
        )
    # Issue 14: a task per frame and the thread path without their tax.
    check(
        "Echo (plain def) at least 0.75x raw Tornado at 100 clients",
        [("100 cl.", summary.advantage("ours-sync", "raw", "echo_rps", 100))],
        0.75,
    )
    check(
        "Echo (async def) at least 0.95x raw Tornado",
        [(f"{c} cl.", summary.advantage("ours", "raw", "echo_rps", c)) for c in echo],
        0.95,
    )
    check(
        "Echo (async def) server CPU per round trip at most 1.1x raw Tornado",
        [(f"{c} cl.", summary.advantage("ours", "raw", "echo_cpu_us", c)) for c in echo],
        1 / 1.1,
    )
    # Issue 16: faster than a hand-written Tornado handler.
    check(
        "Echo (async def) at least 1.2x raw Tornado",
        [(f"{c} cl.", summary.advantage("ours", "raw", "echo_rps", c)) for c in echo],
        1.2,
    )
    check(
        "Echo (async def) server CPU per round trip at most 0.85x raw Tornado",
        [(f"{c} cl.", summary.advantage("ours", "raw", "echo_cpu_us", c)) for c in echo],
        1 / 0.85,
    )
    check(
        "Echo (plain def) at least 0.9x raw Tornado at 100 clients",
        [("100 cl.", summary.advantage("ours-sync", "raw", "echo_rps", 100))],
        0.9,
    )
    rss_size = max(summary.params("rss_kib_per_conn"), default=0)
    rss = summary.median("ours", "rss_kib_per_conn", rss_size)
    if rss is None:
        verdicts.append(("Idle connection at most 40 KiB RSS", None, "not measured"))
    else:
        verdicts.append(("Idle connection at most 40 KiB RSS", rss <= 40, f"{rss:.1f} KiB at {rss_size:,}"))
    _issue27_targets(summary, check)
    return verdicts


def _machine(results: dict[str, Any]) -> list[str]:
    info = results["machine"]
    plan = results["plan"]
    when = datetime.datetime.fromtimestamp(results["started"], datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(f"{name} {v}" for name, v in info["packages"].items() if v)
    dirty = " with uncommitted changes in tornado_websockets/" if info["worktree_dirty"] else ""
    source = f"; ours imported from `{info['ours_from']}`" if info.get("ours_from") else ""
    load = results.get("load_average")
    busy = (
        f"- Load average (1 min) at the start and the end: {load['start']:.2f} and {load['end']:.2f}."
        if load
        else ""
    )
    lines = [
        f"- Run: **{plan['name']}** mode, {plan['repetitions']} repetition(s), median reported; {when}; "
        f"{results['seconds'] / 60:.1f} min.",
        f"- Machine: {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, {info['os']}, "
        f"{info['python']}.",
        f"- Commit {info['commit']}{dirty}; our JSON codec: {info['our_codec']}{source}.",
        f"- Versions: {versions}.",
        f"- Echo: {plan['echo_warmup']} s warm-up then {plan['echo_duration']} s per client count; fan-out: "
        f"{plan['fanout_rounds']} rounds per size (median round), RSS after {plan['idle_seconds']} s idle.",
    ]
    return [*lines, busy] if busy else lines


def render(results: dict[str, Any], title: str = "Benchmark results") -> str:
    """The Markdown report of one harness run."""
    summary = summarize(results)
    lines = [f"# {title}", "", "Written by `make bench` (see `bench/README.md`); do not edit by hand.", ""]
    lines += [*_machine(results), ""]
    lines += [
        "Wall-clock figures move with whatever else the machine runs; the server's CPU time per",
        "operation does not, so read the two together (`bench/README.md` says why).",
        "",
    ]
    lines += _peers_table(summary)
    lines += ["## Echo", ""]
    for metric in ("echo_rps", "echo_cpu_us", "echo_p50_ms", "echo_p99_ms"):
        lines += _metric_table(summary, metric, "clients")
    fairness = [
        row
        for metric in ("fairness_p50_ms", "fairness_p99_ms", "fairness_flood_per_s")
        for row in _metric_table(summary, metric, "echoes in flight")
    ]
    if fairness:
        lines += ["## Fairness: another client during a flood", ""]
        lines += [
            "One client keeps that many echoes in flight; another does closed-loop round trips",
            "meanwhile. Its round trip is how long a connection waits behind a busy one.",
            "",
            *fairness,
        ]
    post = [
        row
        for metric in ("post_p50_ms", "post_p99_ms", "post_rps")
        for row in _metric_table(summary, metric, "clients")
    ]
    if post:
        lines += ["## Emit then reply", ""]
        lines += [
            "An event function that emits, then replies: two small frames back to back. Without",
            "TCP_NODELAY, Nagle's algorithm holds the second until the client's delayed ACK (40 ms).",
            "",
            *post,
        ]
    lines += ["## Fan-out (one emit to every client)", ""]
    for metric in ("fanout_deliveries_per_s", "fanout_cpu_us", "fanout_last_ms", "fanout_first_ms"):
        lines += _metric_table(summary, metric, "clients")
    lines += ["## Memory and connection rate", ""]
    for metric in ("rss_kib_per_conn", "connect_per_s", "connect_cpu_us"):
        lines += _metric_table(summary, metric, "connections")
    lines += ["## Cross-process fan-out through Redis", ""]
    redis_rows = _metric_table(summary, "redis_p50_ms", "receivers") + _metric_table(
        summary, "redis_p99_ms", "receivers"
    )
    lines += redis_rows or ["Not measured in this run.", ""]
    for name, missing in sorted(results.get("redis_pending", {}).items()):
        lines += [f"- {LABELS.get(name, name)}: **pending** ({', '.join(missing)} not available yet).", ""]
    lines += ["## Cross-process fan-out: two processes, receivers split between them", ""]
    cross_rows = []
    for metric in ("cross_deliveries_per_s", "cross_p99_ms", "cross_lost"):
        cross_rows += _metric_table(summary, metric, "receivers")
    lines += cross_rows or ["Not measured in this run.", ""]
    lines += ["## Sharding: one channel against sharded pub/sub", ""]
    shard_rows = []
    for metric in (
        "shard_deliveries_per_s",
        "shard_frames_per_process",
        "shard_redis_out_kib_per_process",
        "shard_redis_cpu_ms",
        "shard_lost",
    ):
        shard_rows += _metric_table(summary, metric, "processes")
    lines += shard_rows or ["Not measured in this run.", ""]
    lines += ["## Ratios (above 1: ours is better, whatever the unit)", ""]
    lines += _ratio_table(
        summary,
        [
            ("echo_rps", "clients"),
            ("echo_cpu_us", "clients"),
            ("fanout_deliveries_per_s", "clients"),
            ("fanout_cpu_us", "clients"),
            ("fanout_last_ms", "clients"),
            ("rss_kib_per_conn", "connections"),
            ("redis_p50_ms", "receivers"),
        ],
    )
    lines += _loop_table(summary)
    lines += _validation_table(summary)
    lines += _reader_table(summary)
    lines += ["", "## Targets (issues 6, 14, 16 and 27)", ""]
    rows = [
        [name, {True: "met", False: "**missed**", None: "-"}[met], why] for name, met, why in targets(summary)
    ]
    lines += _table(["target", "verdict", "figures"], rows)
    lines += [""]
    if results.get("skipped") or results.get("failures"):
        lines += ["## Not measured, or not in full", ""]
        for name, missing in sorted(results.get("skipped", {}).items()):
            lines.append(f"- {LABELS.get(name, name)}: not installed here ({', '.join(missing)}).")
        for failure in results.get("failures", []):
            server = LABELS.get(failure["server"], failure["server"])
            lines.append(
                f"- {server}, {failure['scenario']}, repetition {failure['rep'] + 1}: {failure['error']}"
            )
        lines.append("")
    lines += ["## Every repetition", "", "<details><summary>values per repetition</summary>", ""]
    rows = [
        [
            LABELS.get(server, server),
            metric,
            f"{param:,}",
            ", ".join(_number(v, METRICS[metric].digits) for v in values),
        ]
        for (server, metric, param), values in sorted(summary.values.items())
    ]
    lines += _table(["server", "metric", "param", "values"], rows)
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def compare(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    """Medians of two sets of runs side by side (a patch measured on a scratch copy, say).

    Every run of a set is pooled, so three runs of one repetition give medians of three.
    """
    old = Summary(m for run in before for m in run["measurements"])
    new = Summary(m for run in after for m in run["measurements"])
    rows = []
    for key in sorted(set(old.medians) & set(new.medians)):
        server, metric, param = key
        spec = METRICS[metric]
        a, b = old.medians[key], new.medians[key]
        gain = (b / a if spec.higher_is_better else a / b) if a > 0 and b > 0 else None
        rows.append(
            [
                LABELS.get(server, server),
                f"{spec.title} ({spec.unit})",
                f"{param:,}",
                _number(a, spec.digits),
                _number(b, spec.digits),
                _ratio(gain),
            ]
        )
    header = ["server", "figure", "param", "before", "after", "after vs before (above 1: better)"]
    return "\n".join(_table(header, rows)) + "\n"
