"""The runs: which scenarios, how many repetitions, in which order; every figure as a flat record.

A run is a list of `Measurement` records (server, metric, parameter, repetition, value), saved as
JSON and turned into tables by `bench.report`. Each scenario starts its server afresh, so that one
scenario's garbage never weighs on the next, and the servers' order rotates between repetitions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import machine, scaleout
from bench.processes import (
    cpu_seconds,
    package_source,
    raise_file_limit,
    redis_server,
    rss_bytes,
    server_process,
)
from bench.protocols import DIALECTS
from bench.servers import SERVERS, UVLOOP, ServerSpec

__all__ = ["PLANS", "RAW_PEERS", "Measurement", "Plan", "run_plan", "with_uvloop"]

logger = logging.getLogger(__name__)

#: The servers of the cross-process fan-out: ours, the same work by hand, and python-socketio.
CROSS = ("raw", "aiohttp", "websockets", "ours", "ours-uvloop", "socketio")
#: The servers of the emit-then-reply round trip (their ``post`` event).
POST = ("raw", "aiohttp", "websockets", "ours", "ours-uvloop")
#: The raw servers beside raw Tornado (issue 27): hand-written on aiohttp and on websockets.
RAW_PEERS = ("aiohttp", "websockets")


@dataclass(frozen=True, slots=True)
class Plan:
    """How much to measure: a mode of the harness."""

    name: str
    repetitions: int
    echo_clients: tuple[int, ...]
    echo_warmup: float
    echo_duration: float
    fanout_sizes: tuple[int, ...]
    fanout_rounds: int
    fanout_pause: float
    idle_seconds: float
    redis_receivers: int
    redis_rounds: int
    #: Cross-process fan-out (bench/scaleout.py): receivers split between two processes, rounds.
    cross_receivers: int = 0
    cross_rounds: int = 0
    #: Sharding: processes, rooms (each with its members on one process), members per room, rounds.
    shard_processes: int = 0
    shard_rooms: int = 0
    shard_members: int = 0
    shard_rounds: int = 0
    #: Seconds one fan-out round may take; a slower server gets the figures of that round only.
    fanout_timeout: float = 60.0
    #: Another client's round trips while one client floods (echoes kept in flight): seconds, window.
    fairness_duration: float = 0.0
    fairness_window: int = 200
    #: Emit then reply (``post``: two frames back): one client's closed-loop round trips, seconds.
    post_duration: float = 0.0
    servers: tuple[str, ...] = tuple(name for name in SERVERS if name not in UVLOOP)


PLANS = {
    "quick": Plan(
        "quick",
        repetitions=1,
        echo_clients=(1, 10, 100),
        echo_warmup=0.3,
        echo_duration=1.0,
        fanout_sizes=(1000,),
        fanout_rounds=5,
        fanout_pause=0.1,
        idle_seconds=1.0,
        redis_receivers=20,
        redis_rounds=0,
        cross_receivers=200,
        cross_rounds=3,
        fairness_duration=1.0,
        post_duration=1.0,
        shard_processes=4,
        shard_rooms=8,
        shard_members=10,
        shard_rounds=3,
    ),
    # Echo alone, as the full run measures it: what `make bench-echo PYTHON=...` runs on each Python.
    "echo": Plan(
        "echo",
        repetitions=5,
        echo_clients=(1, 10, 100),
        echo_warmup=1.0,
        echo_duration=4.0,
        fanout_sizes=(),
        fanout_rounds=0,
        fanout_pause=0.0,
        idle_seconds=0.0,
        redis_receivers=0,
        redis_rounds=0,
        servers=("raw", "aiohttp", "websockets", "ours", "ours-sync", "socketio", "channels"),
    ),
    # The raw servers side by side (issue 27): echo, fan-out to 5,000 and idle memory, nothing else.
    "peers": Plan(
        "peers",
        repetitions=3,
        echo_clients=(1, 10, 100),
        echo_warmup=1.0,
        echo_duration=4.0,
        fanout_sizes=(5000,),
        fanout_rounds=10,
        fanout_pause=0.3,
        idle_seconds=3.0,
        redis_receivers=0,
        redis_rounds=0,
        servers=("raw", "aiohttp", "websockets", "ours", "ours-sync"),
    ),
    "full": Plan(
        "full",
        repetitions=5,
        echo_clients=(1, 10, 100),
        echo_warmup=1.0,
        echo_duration=4.0,
        fanout_sizes=(1000, 10000),
        fanout_rounds=10,
        fanout_pause=0.3,
        idle_seconds=3.0,
        redis_receivers=100,
        redis_rounds=100,
        cross_receivers=4000,
        cross_rounds=10,
        fairness_duration=4.0,
        post_duration=4.0,
        shard_processes=8,
        shard_rooms=64,
        shard_members=50,
        shard_rounds=10,
    ),
}


def with_uvloop(servers: tuple[str, ...]) -> tuple[str, ...]:
    """``servers`` with each uvloop variant of `UVLOOP` after ours (``run --uvloop``): both loops measured."""
    extra = tuple(name for name in UVLOOP if name not in servers)
    if "ours" not in servers:
        return servers + extra
    at = servers.index("ours") + 1
    return servers[:at] + extra + servers[at:]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One figure: ``metric`` of ``server`` at ``param`` (clients, connections) in one repetition."""

    server: str
    metric: str
    param: int
    rep: int
    value: float
    detail: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Collects the measurements and the failures of a run."""

    def __init__(self) -> None:
        self.measurements: list[Measurement] = []
        self.failures: list[dict[str, Any]] = []

    def add(self, server: str, metric: str, param: int, rep: int, value: float, **detail: Any) -> None:
        self.measurements.append(Measurement(server, metric, param, rep, float(value), detail))
        logger.info("%-10s %-22s %6d rep %d: %.4g", server, metric, param, rep, value)

    def fail(self, server: str, scenario: str, rep: int, error: str) -> None:
        self.failures.append({"server": server, "scenario": scenario, "rep": rep, "error": error})
        logger.warning("%s %s rep %d failed: %s", server, scenario, rep, error)


def _warm(load: Any, url: str, dialect: str) -> None:
    """One connection and a few echoes, so that lazy imports and first-call costs are paid."""
    load.call("connect", url=url, dialect=dialect, count=1)
    load.call("echo", warmup=0.0, duration=0.2)
    load.call("close")


def run_echo(
    spec: ServerSpec, plan: Plan, rep: int, load: Any, recorder: Recorder, pythonpath: str | None
) -> None:
    """Echo round trips per second (and latency) with each number of concurrent clients."""
    dialect = DIALECTS[spec.dialect]
    with server_process(spec, pythonpath=pythonpath) as (port, process):
        url = dialect.url(port)
        _warm(load, url, spec.dialect)
        for clients in plan.echo_clients:
            opened = load.call("connect", url=url, dialect=spec.dialect, count=clients)
            if opened["failed"]:
                raise RuntimeError(f"{opened['failed']} of {clients} connections failed: {opened['error']}")
            result = load.call(
                "echo", warmup=plan.echo_warmup, duration=plan.echo_duration, server_pid=process.pid
            )
            load.call("close")
            if result["errors"] or result["unanswered"]:
                raise RuntimeError(f"echo with {clients} clients: {result}")
            recorder.add(spec.name, "echo_rps", clients, rep, result["rps"])
            recorder.add(spec.name, "echo_cpu_us", clients, rep, result["server_cpu_us"])
            recorder.add(spec.name, "echo_p50_ms", clients, rep, result["p50_ms"])
            recorder.add(spec.name, "echo_p99_ms", clients, rep, result["p99_ms"])


def run_fairness(
    spec: ServerSpec, plan: Plan, rep: int, load: Any, recorder: Recorder, pythonpath: str | None
) -> None:
    """Another client's echo round trip while one client keeps ``fairness_window`` echoes in flight."""
    dialect = DIALECTS[spec.dialect]
    with server_process(spec, pythonpath=pythonpath) as (port, _):
        url = dialect.url(port)
        _warm(load, url, spec.dialect)
        for group in ("probe", "flood"):
            opened = load.call("connect", url=url, dialect=spec.dialect, count=1, group=group)
            if opened["failed"]:
                raise RuntimeError(f"the {group} connection failed: {opened['error']}")
        result = load.call(
            "fairness", warmup=plan.echo_warmup, duration=plan.fairness_duration, window=plan.fairness_window
        )
        load.call("close")
        if not result["probe_round_trips"]:
            raise RuntimeError(f"the other client got no answer during the flood: {result}")
        recorder.add(spec.name, "fairness_p50_ms", plan.fairness_window, rep, result["p50_ms"])
        recorder.add(spec.name, "fairness_p99_ms", plan.fairness_window, rep, result["p99_ms"])
        recorder.add(spec.name, "fairness_flood_per_s", plan.fairness_window, rep, result["flood_per_s"])


def run_post(
    spec: ServerSpec, plan: Plan, rep: int, load: Any, recorder: Recorder, pythonpath: str | None
) -> None:
    """One client's emit-then-reply round trip: ``post`` answered by ``receipt`` then ``posted``.

    Two small frames back to back are what Nagle's algorithm holds until the client's delayed ACK
    (about 40 ms on Linux) on a socket without TCP_NODELAY.
    """
    dialect = DIALECTS[spec.dialect]
    with server_process(spec, pythonpath=pythonpath) as (port, process):
        url = dialect.url(port)
        _warm(load, url, spec.dialect)
        opened = load.call("connect", url=url, dialect=spec.dialect, count=1)
        if opened["failed"]:
            raise RuntimeError(f"the connection failed: {opened['error']}")
        result = load.call(
            "echo", warmup=plan.echo_warmup, duration=plan.post_duration, server_pid=process.pid, event="post"
        )
        load.call("close")
        if result["errors"] or result["unanswered"]:
            raise RuntimeError(f"emit then reply: {result}")
        recorder.add(spec.name, "post_p50_ms", 1, rep, result["p50_ms"])
        recorder.add(spec.name, "post_p99_ms", 1, rep, result["p99_ms"])
        recorder.add(spec.name, "post_rps", 1, rep, result["rps"])


def run_fanout(
    spec: ServerSpec, plan: Plan, size: int, rep: int, load: Any, recorder: Recorder, pythonpath: str | None
) -> None:
    """Connect ``size`` clients, weigh the idle server, then broadcast rounds to all of them."""
    dialect = DIALECTS[spec.dialect]
    with server_process(spec, pythonpath=pythonpath) as (port, process):
        url = dialect.url(port)
        _warm(load, url, spec.dialect)
        time.sleep(0.5)
        before = rss_bytes(process.pid)
        cpu_before = cpu_seconds(process.pid)
        opened = load.call("connect", url=url, dialect=spec.dialect, count=size)
        connect_cpu = cpu_seconds(process.pid) - cpu_before
        if opened["failed"]:
            raise RuntimeError(f"{opened['failed']} of {size} connections failed: {opened['error']}")
        recorder.add(spec.name, "connect_per_s", size, rep, size / opened["seconds"])
        recorder.add(spec.name, "connect_cpu_us", size, rep, connect_cpu / size * 1e6)
        idle = load.call("idle", seconds=plan.idle_seconds)
        after = rss_bytes(process.pid)
        if idle["open"] != size:
            raise RuntimeError(f"only {idle['open']} of {size} connections still open after idling")
        recorder.add(
            spec.name, "rss_kib_per_conn", size, rep, (after - before) / size / 1024, rss_mib=after / 2**20
        )
        result = load.call(
            "fanout",
            rounds=plan.fanout_rounds,
            pause=plan.fanout_pause,
            timeout=plan.fanout_timeout,
            server_pid=process.pid,
            limit=(plan.fanout_rounds + 2) * (plan.fanout_timeout + plan.fanout_pause) + 60,
        )
        load.call("close")
        if result["duplicates"] or result["wrong"]:
            raise RuntimeError(f"fan-out to {size}: {result['duplicates']} twice, {result['wrong']} wrong")
        if result["incomplete"]:
            last = result["rounds"][-1]
            note = f"a round was still incomplete after {result['timeout']:.0f} s"
            recorder.fail(
                spec.name,
                f"fanout {size}",
                rep,
                f"{note} ({last['received']:,} of {size:,} delivered): its figures are upper bounds",
            )
        rounds = result["rounds"]
        recorder.add(
            spec.name,
            "fanout_deliveries_per_s",
            size,
            rep,
            statistics.median(r["deliveries_per_s"] for r in rounds),
        )
        recorder.add(spec.name, "fanout_last_ms", size, rep, statistics.median(r["last_ms"] for r in rounds))
        cpu = statistics.median(r["server_cpu_us"] for r in rounds)
        recorder.add(spec.name, "fanout_cpu_us", size, rep, cpu)
        recorder.add(
            spec.name, "fanout_first_ms", size, rep, statistics.median(r["first_ms"] for r in rounds)
        )


def run_redis(
    spec: ServerSpec,
    plan: Plan,
    rep: int,
    load: Any,
    recorder: Recorder,
    redis_url: str,
    pythonpath: str | None,
) -> None:
    """Two server processes on one Redis: a client of the first broadcasts, clients of the second time it."""
    dialect = DIALECTS[spec.dialect]
    with (
        server_process(spec, redis_url, pythonpath) as (sender_port, _),
        server_process(spec, redis_url, pythonpath) as (receiver_port, _),
    ):
        load.call("connect", url=dialect.url(sender_port), dialect=spec.dialect, count=1, group="sender")
        opened = load.call(
            "connect", url=dialect.url(receiver_port), dialect=spec.dialect, count=plan.redis_receivers
        )
        if opened["failed"]:
            raise RuntimeError(f"{opened['failed']} receivers failed to connect: {opened['error']}")
        time.sleep(0.5)  # subscriptions and group memberships settle
        result = load.call(
            "fanout",
            rounds=plan.redis_rounds,
            warmup_rounds=5,
            pause=0.02,
            timeout=10,
            trigger_group="sender",
            counted_group="main",
        )
        load.call("close")
        if result["missing"]:
            raise RuntimeError(f"{result['missing']} cross-process deliveries missing")
        recorder.add(spec.name, "redis_p50_ms", plan.redis_receivers, rep, result["p50_ms"])
        recorder.add(spec.name, "redis_p99_ms", plan.redis_receivers, rep, result["p99_ms"])


def _attempt(
    recorder: Recorder, server: str, scenario: str, rep: int, load: Any, step: Any, *args: Any
) -> None:
    try:
        step(*args)
    except Exception as error:
        recorder.fail(server, scenario, rep, str(error))
        try:
            load.call("close", limit=60)
        except RuntimeError:
            logger.exception("The load process could not close its connections")


def run_plan(plan: Plan, pythonpath: str | None = None, redis: bool = True) -> dict[str, Any]:
    """Run every scenario of ``plan`` for every installed server; returns the JSON-ready results."""
    from bench.loadclient import LoadProcess

    file_limit = raise_file_limit()
    needed = max(plan.fanout_sizes, default=0) + 1000
    if file_limit < needed:
        raise RuntimeError(f"The open-file limit is {file_limit}; this plan needs {needed} (raise ulimit -n)")
    started = time.time()
    load_start = os.getloadavg()[0]
    recorder = Recorder()
    skipped = {name: SERVERS[name].missing() for name in plan.servers if SERVERS[name].missing()}
    servers = [SERVERS[name] for name in plan.servers if name not in skipped]
    redis_pending = {
        spec.name: spec.missing(redis=True)
        for spec in servers
        if spec.redis_requires and spec.missing(redis=True)
    }
    load = LoadProcess()
    try:
        for rep in range(plan.repetitions):
            order = servers[rep % len(servers) :] + servers[: rep % len(servers)]
            for spec in order:
                _attempt(
                    recorder,
                    spec.name,
                    "echo",
                    rep,
                    load,
                    run_echo,
                    spec,
                    plan,
                    rep,
                    load,
                    recorder,
                    pythonpath,
                )
                if plan.fairness_duration and not spec.echo_only:
                    fairness_args = (spec, plan, rep, load, recorder, pythonpath)
                    _attempt(recorder, spec.name, "fairness", rep, load, run_fairness, *fairness_args)
                if plan.post_duration and spec.name in POST:
                    post_args = (spec, plan, rep, load, recorder, pythonpath)
                    _attempt(recorder, spec.name, "post", rep, load, run_post, *post_args)
                for size in () if spec.echo_only else plan.fanout_sizes:
                    scenario = f"fanout {size}"
                    args = (spec, plan, size, rep, load, recorder, pythonpath)
                    _attempt(recorder, spec.name, scenario, rep, load, run_fanout, *args)
        if redis and plan.redis_rounds:
            with redis_server() as url:
                for rep in range(plan.repetitions):
                    for spec in servers:
                        if spec.redis_requires is None or spec.name in redis_pending:
                            continue
                        redis_args = (spec, plan, rep, load, recorder, url, pythonpath)
                        _attempt(recorder, spec.name, "redis", rep, load, run_redis, *redis_args)
        if redis and plan.cross_rounds:
            with redis_server() as url:
                for rep in range(plan.repetitions):
                    for spec in servers:
                        if (
                            spec.redis_requires is None
                            or spec.name in redis_pending
                            or spec.name not in CROSS
                        ):
                            continue
                        cross_args = (spec, plan, rep, load, recorder, url, pythonpath)
                        _attempt(
                            recorder, spec.name, "cross", rep, load, scaleout.run_crossprocess, *cross_args
                        )
        if redis and plan.shard_rounds and "ours" in [spec.name for spec in servers]:
            for rep in range(plan.repetitions):
                shard_args = (plan, rep, load, recorder, pythonpath)
                _attempt(recorder, "ours", "sharding", rep, load, scaleout.run_sharding, *shard_args)
    finally:
        load.stop()
    return {
        "plan": dataclasses.asdict(plan),
        "machine": {
            **machine.describe(),
            "pythonpath": pythonpath or "",
            "ours_from": package_source(pythonpath),
        },
        "started": started,
        "seconds": time.time() - started,
        "load_average": {"start": load_start, "end": os.getloadavg()[0]},
        "skipped": skipped,
        "redis_pending": redis_pending,
        "failures": recorder.failures,
        "measurements": [dataclasses.asdict(m) for m in recorder.measurements],
    }


def save(results: dict[str, Any], path: Path) -> None:
    """Write the results as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
