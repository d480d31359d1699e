"""Process liveness and shared metrics (tornado_websockets.redis.processes), against a real Redis."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import redis
import redis.asyncio
import redis.asyncio.cluster

from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer
from tornado_websockets import delivery
from tornado_websockets.redis.processes import ProcessDirectory


async def test_live_processes_share_their_snapshots_and_a_dead_one_is_claimed_once(
    redis_server: RedisServer,
) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    one, two = ProcessDirectory("C", "one", ttl=15), ProcessDirectory("C", "two", ttl=15)
    try:
        # A process that expired long ago (killed without a word): what a refresh would have left.
        await client.zadd(one.processes, {"gone": 1})
        await client.hset(one.metrics, "gone", '{"process": "gone"}')
        assert await one.refresh(client, {"process": "one"}) == ["gone"]
        dead = await two.refresh(client, {})  # a broker started with a bare callable: no metrics
        assert dead == ["gone"]
        assert two.alive == 2
        assert await one.snapshots(client) == []  # two shares none, gone is dead
        assert await two.snapshots(client) == [{"process": "one"}]
        assert [await one.claim(client, "gone"), await two.claim(client, "gone")] == [True, False]
        await one.leave(client)
        assert await two.count_alive(client) == 1
        sync = redis.Redis.from_url(redis_server.url)
        assert two.snapshots_sync(sync) == []
        sync.close()
    finally:
        await client.aclose()


async def test_frames_fewer_live_processes_heard_are_counted_missed(redis_server: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    one, two = ProcessDirectory("C", "one", ttl=15), ProcessDirectory("C", "two", ttl=15)
    try:
        await one.refresh(client, {})
        await two.refresh(client, {})
        await one.count_unheard(client, [("/p", 2), ("/p", 1), ("/q", 0)])
        assert delivery.dropped() == {
            (delivery.BACKPLANE_MISSED, "/p"): 1,
            (delivery.BACKPLANE_MISSED, "/q"): 2,
        }
        await two.leave(client)  # a graceful stop: asked again before counting, nothing missed
        await one.count_unheard(client, [("/r", 1)])
        assert (delivery.BACKPLANE_MISSED, "/r") not in delivery.dropped()
    finally:
        await client.aclose()


async def test_a_process_back_before_its_claim_stays_listed_and_a_reaped_one_learns_it(
    redis_server: RedisServer,
) -> None:
    """A frozen process seen dead, back before the claim: not taken out. Taken out once frozen
    again: it finds itself `taken_out` at its next refresh, and `was_reaped` says so."""
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await _claims_and_reaping(client)
    finally:
        await client.aclose()


async def test_claims_and_reaping_on_a_cluster(tmp_path: Path) -> None:
    """The same on Redis Cluster: the claim is a script on one key, the marker a key of its own."""
    with RedisCluster.running(tmp_path) as cluster:
        client = redis.asyncio.cluster.RedisCluster.from_url(f"redis://127.0.0.1:{cluster.ports[0]}/0")
        try:
            await _claims_and_reaping(cast("redis.asyncio.Redis", client))
        finally:
            await client.aclose()


async def _claims_and_reaping(client: redis.asyncio.Redis) -> None:
    frozen, live = ProcessDirectory("C", "frozen", ttl=15), ProcessDirectory("C", "live", ttl=15)
    await frozen.refresh(client, {})
    await client.zadd(frozen.processes, {"frozen": 1})  # its entry expired long ago
    assert await live.refresh(client, {}) == ["frozen"]
    await frozen.refresh(client, {})  # it resumes before the claim
    assert not frozen.taken_out
    assert not await live.claim(client, "frozen")
    assert await client.zscore(frozen.processes, "frozen") is not None
    assert await client.get(live.reaped_key("frozen")) is None  # no marker left behind

    await client.zadd(frozen.processes, {"frozen": 1})  # frozen again, for good this time
    assert await live.refresh(client, {}) == ["frozen"]
    assert await live.claim(client, "frozen")
    await live.reaped(client, "frozen")
    await frozen.refresh(client, {})  # it resumes after the reaping
    assert frozen.taken_out
    assert await frozen.was_reaped(client, patience=1.0)
    assert await client.get(live.reaped_key("frozen")) is None  # answered once

    await client.flushall()  # Redis lost its data: taken out, but reaped by nobody
    await frozen.refresh(client, {})
    assert frozen.taken_out
    assert not await frozen.was_reaped(client, patience=1.0)
    await frozen.refresh(client, {})
    assert not frozen.taken_out
