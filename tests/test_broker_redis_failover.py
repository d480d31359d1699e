"""Issue 28 §4: a real Redis Cluster of three primaries and three replicas (``cluster-node-timeout``
of one second) fails over while frames flow between two server processes. A reader on the other
process receives every frame, in order, or is told (``resync``, a jump in ``seq``); the talker's
own clients receive every frame. The backplane URL names the primary that dies, or a survivor."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.faults import Seen, flow_through
from tests.redis_cluster import RedisCluster
from tests.servers import backplane, connect_when_up, free_port, running
from tests.test_recovery_redis import joined, status

#: The sharded channel of /news's lobby, and the key whose slot it is in.
LOBBY = "{tornado_websockets:/news}:lobby"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    started = RedisCluster(tmp_path, replicas=1, node_timeout=1000)
    try:
        started.start()
        yield started
    finally:
        for process in started.processes:  # a frozen node would not hear SIGTERM
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
        started.stop()


def primaries(cluster: RedisCluster) -> list[int]:
    with cluster.node(cluster.owner(LOBBY)) as client:
        return sorted({int(row[2][1]) for row in client.execute_command("CLUSTER SLOTS")})


def replica_of(cluster: RedisCluster, port: int) -> int:
    with cluster.node(port) as client:
        return int(client.info("replication")["slave0"]["port"])


def lobby_subscribers(cluster: RedisCluster) -> int:
    """The processes subscribed to the lobby on the primary that serves it now."""
    try:
        with cluster.node(cluster.owner(LOBBY)) as client:
            return int(client.execute_command("PUBSUB SHARDNUMSUB", LOBBY)[0][1])
    except (redis.RedisError, RuntimeError):
        return 0


def taken_over(cluster: RedisCluster, victim: int) -> Callable[[], None]:
    """Wait until another node serves the lobby and the cluster says it is ok."""

    def wait() -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                owner = cluster.owner(LOBBY)
                if owner != victim and cluster.healthy(owner):
                    return
            except (redis.RedisError, RuntimeError):
                pass
            assert time.monotonic() < deadline, "the cluster did not fail over"
            time.sleep(0.05)

    return wait


async def fail_over(
    cluster: RedisCluster, url: str, fault: Callable[[], None], env: dict[str, str] | None = None
) -> tuple[Seen, Seen, dict[str, int]]:
    """Two processes on ``url``, frames flowing through ``fault``: what the reader and the talker
    saw, and the backplane figures of the reader's process."""
    ports = free_port(), free_port()
    page = "ws://127.0.0.1:{}/ws/news".format
    async with running(backplane(ports[0], url), env=env), running(backplane(ports[1], url), env=env):
        talker = await connect_when_up(page(ports[1]))
        reader = await connect_when_up(page(ports[0]))
        for client in (talker, reader):
            while (await status(client))["state"] != "connected":
                await asyncio.sleep(0.05)
        await joined(reader)
        await joined(talker)
        while lobby_subscribers(cluster) != 2:
            await asyncio.sleep(0.05)

        async def back() -> bool:
            return lobby_subscribers(cluster) == 2

        reading, talking = await flow_through(talker, reader, fault, back)
        figures = await status(reader)
        print(  # noqa: T201 - the figures of the failover
            f"\nreader: {len(reading.said)} frames, {len(reading.missing)} missed, {reading.resyncs} resync, "
            f"{reading.gaps} gaps; its process counted {figures['missed']} missed, {figures['reconnects']} "
            f"reconnections; talker missed {len(talking.missing)}"
        )
        for client in (talker, reader):
            client.close()
        return reading, talking, figures


def assert_every_frame_or_told(reading: Seen, talking: Seen) -> None:
    assert reading.in_order, reading.disorder
    assert not reading.missing or reading.resyncs or reading.gaps, reading
    assert talking.in_order, talking.disorder
    assert talking.missing == []


@pytest.mark.parametrize("named", ["the primary that dies", "a survivor"])
async def test_frames_through_a_primary_killed_in_a_cluster_with_replicas(
    cluster: RedisCluster, named: str
) -> None:
    """Before: naming the dead primary, the backplane never reconnected; naming a survivor, the
    frames said during the failover were lost to the reader without a sign."""
    victim = cluster.owner(LOBBY)
    survivor = next(port for port in primaries(cluster) if port != victim)
    url = f"redis://127.0.0.1:{victim if named == 'the primary that dies' else survivor}/0?cluster=1"
    wait = taken_over(cluster, victim)

    def kill_the_primary() -> None:
        cluster.kill(victim)
        wait()

    reading, talking, _ = await fail_over(cluster, url, kill_the_primary)
    assert_every_frame_or_told(reading, talking)


async def test_frames_through_a_manual_failover_follow_the_slot(cluster: RedisCluster) -> None:
    """``CLUSTER FAILOVER``: the old primary, now a replica, unsubscribes its sharded subscribers
    (``SUNSUBSCRIBE``) on a connection that stays open. Before: the processes went on reading
    nothing from it."""
    victim = cluster.owner(LOBBY)
    replica = replica_of(cluster, victim)
    wait = taken_over(cluster, victim)

    def fail_over_by_hand() -> None:
        with cluster.node(replica) as client:
            client.execute_command("CLUSTER FAILOVER")
        wait()

    reading, talking, _ = await fail_over(cluster, cluster.url, fail_over_by_hand)
    assert_every_frame_or_told(reading, talking)


async def test_a_frozen_primary_is_noticed_by_the_sharded_keepalive(cluster: RedisCluster) -> None:
    """SIGSTOP: the reader's process, which publishes nothing, hears nothing on its subscription to
    the frozen primary. Before: no keepalive on sharded subscriptions, so it never noticed."""
    victim = cluster.owner(LOBBY)
    survivor = next(port for port in primaries(cluster) if port != victim)
    wait = taken_over(cluster, victim)

    def freeze_the_primary() -> None:
        cluster.by_port[victim].send_signal(signal.SIGSTOP)
        wait()

    url = f"redis://127.0.0.1:{survivor}/0?cluster=1"
    env = {"TWS_KEEPALIVE": "0.5"}
    reading, talking, figures = await fail_over(cluster, url, freeze_the_primary, env)
    assert_every_frame_or_told(reading, talking)
    assert figures["reconnects"] >= 1
