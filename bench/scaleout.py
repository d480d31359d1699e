"""Scale-out scenarios: cross-process fan-out through Redis, and sharded pub/sub on a Redis Cluster.

- **Cross-process fan-out**: two processes of one server on one ``redis-server``; the receivers are
  split between them and one client of the first broadcasts. Deliveries per second (receivers /
  time until the last has it), p99 latency, and frames lost. Ours, raw Tornado relaying through
  ``redis.asyncio`` pub/sub by hand (``bench/servers/raw_tornado.py --redis``), python-socketio
  with its ``AsyncRedisManager``.
- **Sharding**: ours in N processes, each room's members on one process, and the sender of each
  room on another one; every room emits at once. Once on one ``redis-server`` with the default
  backplane (one channel: every process receives every frame), once on a 3-primary Redis Cluster
  with sharded pub/sub (``?cluster=1``: a process receives only its rooms' frames). Deliveries per
  second, the frames each process receives, and the CPU time Redis spent.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from bench.processes import free_port, server_process
from bench.protocols import DIALECTS
from bench.servers import SERVERS, ServerSpec

__all__ = ["redis_cluster", "run_crossprocess", "run_sharding"]


def _cluster_port() -> int:
    """A free port whose cluster bus port (10,000 above) is a valid port too."""
    while (port := free_port()) > 55_000:
        pass
    return port


@contextlib.contextmanager
def redis_cluster(size: int = 3) -> Iterator[list[int]]:
    """A throwaway Redis Cluster of ``size`` primaries on loopback; yields their ports."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        raise RuntimeError("redis-server and redis-cli are needed (apt-get install redis-server)")
    ports = [_cluster_port() for _ in range(size)]
    processes = []
    with tempfile.TemporaryDirectory() as directory:
        try:
            for port in ports:
                node = Path(directory) / str(port)
                node.mkdir()
                command = [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]
                command += ["--cluster-enabled", "yes", "--dir", str(node)]
                processes.append(
                    subprocess.Popen(command, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
                )
            for port in ports:
                _wait_port(port)
            nodes = [f"127.0.0.1:{port}" for port in ports]
            create = [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
            subprocess.run(create, check=True, capture_output=True, timeout=60)
            deadline = time.monotonic() + 30
            while not all(_cluster_ok(port) for port in ports):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis Cluster did not become ok")
                time.sleep(0.1)
            yield ports
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(15)


def _wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not listen on {port}")
        time.sleep(0.05)


def _cluster_ok(port: int) -> bool:
    with redis.Redis(port=port) as client:
        return str(client.execute_command("CLUSTER INFO").get("cluster_state")) == "ok"


def _redis_usage(ports: list[int]) -> tuple[float, int]:
    """CPU seconds Redis spent (user + system) and bytes it sent, all nodes together."""
    cpu, sent = 0.0, 0
    for port in ports:
        with redis.Redis(port=port) as client:
            info = client.info("cpu") | client.info("stats")
        cpu += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        sent += int(info["total_net_output_bytes"])
    return cpu, sent


def _rounds(result: dict[str, Any], what: str) -> list[dict[str, float]]:
    if result["missing"] or result["incomplete"]:
        raise RuntimeError(
            f"{result['missing']} {what} deliveries missing (incomplete: {result['incomplete']})"
        )
    return list(result["rounds"])


def run_crossprocess(
    spec: ServerSpec, plan: Any, rep: int, load: Any, recorder: Any, redis_url: str, pythonpath: str | None
) -> None:
    """Two processes, receivers split between them, one broadcaster on the first."""
    dialect = DIALECTS[spec.dialect]
    half = plan.cross_receivers // 2
    with (
        server_process(spec, redis_url, pythonpath) as (first, _),
        server_process(spec, redis_url, pythonpath) as (second, _),
    ):
        load.call("connect", url=dialect.url(first), dialect=spec.dialect, count=1, group="sender")
        for port, count in ((first, half), (second, plan.cross_receivers - half)):
            opened = load.call("connect", url=dialect.url(port), dialect=spec.dialect, count=count)
            if opened["failed"]:
                raise RuntimeError(f"{opened['failed']} receivers failed to connect: {opened['error']}")
        time.sleep(1.0)  # subscriptions settle
        result = load.call(
            "fanout", rounds=plan.cross_rounds, warmup_rounds=2, pause=0.2, timeout=60, trigger_group="sender"
        )
        load.call("close")
    rounds = _rounds(result, "cross-process")
    receivers = plan.cross_receivers
    recorder.add(
        spec.name,
        "cross_deliveries_per_s",
        receivers,
        rep,
        statistics.median(r["deliveries_per_s"] for r in rounds),
    )
    recorder.add(spec.name, "cross_p99_ms", receivers, rep, result["p99_ms"])
    recorder.add(spec.name, "cross_lost", receivers, rep, result["missing"] + result["duplicates"])


def run_sharding(plan: Any, rep: int, load: Any, recorder: Any, pythonpath: str | None) -> None:
    """Ours in ``plan.shard_processes`` processes, single channel then sharded, rooms emitting at once."""
    from bench.processes import redis_server

    spec = SERVERS["ours"]
    with redis_server() as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        _sharding_round(spec, plan, rep, load, recorder, "single", url, [port], pythonpath)
    with redis_cluster() as ports:
        url = f"redis://127.0.0.1:{ports[0]}/0?cluster=1"
        _sharding_round(spec, plan, rep, load, recorder, "sharded", url, ports, pythonpath)


def _sharding_round(
    spec: ServerSpec,
    plan: Any,
    rep: int,
    load: Any,
    recorder: Any,
    mode: str,
    url: str,
    redis_ports: list[int],
    pythonpath: str | None,
) -> None:
    dialect = DIALECTS[spec.dialect]
    count = plan.shard_processes
    with contextlib.ExitStack() as stack:
        ports = [stack.enter_context(server_process(spec, url, pythonpath))[0] for _ in range(count)]
        for room in range(plan.shard_rooms):
            name = f"room{room}"
            home, other = ports[room % count], ports[(room + 1) % count]
            opened = load.call(
                "connect", url=dialect.url(home), dialect=spec.dialect, count=plan.shard_members, room=name
            )
            if opened["failed"]:
                raise RuntimeError(f"{opened['failed']} members failed to connect: {opened['error']}")
            load.call(
                "connect",
                url=dialect.url(other),
                dialect=spec.dialect,
                count=1,
                group="sender",
                room=name,
                join=False,
            )
        time.sleep(2.0)  # joins and subscriptions settle
        cpu_before, sent_before = _redis_usage(redis_ports)
        result = load.call(
            "fanout",
            rounds=plan.shard_rounds,
            warmup_rounds=1,
            pause=0.1,
            timeout=60,
            trigger_group="sender",
            every_trigger=True,
        )
        cpu_after, sent_after = _redis_usage(redis_ports)
        load.call("close")
    rounds = _rounds(result, "sharding")
    frames = plan.shard_rooms * (plan.shard_rounds + 1)  # warm-up round included in Redis's figures
    # Every process gets every frame on one channel; with sharded pub/sub, those of its own rooms.
    per_process = frames if mode == "single" else frames / count
    name = f"ours-{mode}"
    recorder.add(
        name, "shard_deliveries_per_s", count, rep, statistics.median(r["deliveries_per_s"] for r in rounds)
    )
    recorder.add(name, "shard_frames_per_process", count, rep, per_process)
    recorder.add(
        name, "shard_redis_out_kib_per_process", count, rep, (sent_after - sent_before) / 1024 / count
    )
    recorder.add(name, "shard_redis_cpu_ms", count, rep, (cpu_after - cpu_before) * 1000)
    recorder.add(name, "shard_lost", count, rep, result["missing"] + result["duplicates"])
