"""Which server processes live, and their metrics, shared through Redis beside the backplane.

Keys, for a channel ``C``:

- ``C:processes`` (sorted set): each live server process, scored with the Redis time (ms) its
  entry expires at; refreshed every third of ``ttl``. A process whose score is past is dead.
- ``C:metrics`` (hash): process -> its last metrics snapshot (JSON), refreshed as often.

A dead process (killed, frozen, cut off for longer than ``ttl``) is claimed by the first live
process that sees it (`ProcessDirectory.claim`, a ``ZREM`` only one process wins), which then
takes out what it left (see `tornado_websockets.redis.presence`).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.client

from tornado_websockets import codec, delivery
from tornado_websockets.redis.client import CONNECTION_ERRORS, redis_time_ms, redis_time_ms_sync
from tornado_websockets.redis.common import raise_if_cancelling, text

__all__ = ["ProcessDirectory", "live_snapshots"]

# Presence's logger: liveness and metrics were part of it before they moved.
logger = logging.getLogger("tornado_websockets.presence_redis")


class ProcessDirectory:
    """One server process's liveness and metrics in Redis, and the other processes' as seen from it.

    :param channel: the backplane's channel, prefix of the keys.
    :param process: this process's id (its broker's).
    :param ttl: seconds after which a process that stopped refreshing counts as dead.
    """

    def __init__(self, channel: str, process: str, ttl: float) -> None:
        self.processes = f"{channel}:processes"
        self.metrics = f"{channel}:metrics"
        self.process = process
        self.ttl = ttl
        #: Server processes alive at the last refresh (this one included); 0 before the first.
        self.alive = 0

    def __repr__(self) -> str:
        return f"<ProcessDirectory {self.processes!r} {self.process[:8]} alive={self.alive}>"

    async def refresh(self, client: redis.asyncio.Redis, snapshot: dict[str, Any]) -> list[str]:
        """Say this process lives (and share its ``snapshot``, if any), count the live processes;
        returns the dead ones."""
        now = await redis_time_ms(client)
        async with client.pipeline(transaction=False) as pipe:
            pipe.zadd(self.processes, {self.process: now + int(self.ttl * 1000)})
            if snapshot:  # a broker started with a bare callback has no metrics to share
                pipe.hset(self.metrics, self.process, codec.dumps(snapshot))
            pipe.zcount(self.processes, f"({now}", "+inf")
            pipe.zrangebyscore(self.processes, "-inf", now)
            *_, alive, dead = await pipe.execute()
        self.alive = int(alive)
        return [text(process) for process in dead]

    async def count_alive(self, client: redis.asyncio.Redis) -> int:
        """How many server processes live now (asked again, not from the last refresh)."""
        now = await redis_time_ms(client)
        self.alive = int(await client.zcount(self.processes, f"({now}", "+inf"))
        return self.alive

    async def count_unheard(self, client: redis.asyncio.Redis, heard: list[tuple[str, int]]) -> None:
        """Count the frames of each (path, receivers) fewer processes received than are alive
        (resubscribing, frozen, dead but not yet expired): `~tornado_websockets.delivery.BACKPLANE_MISSED`."""
        if heard and max(count for _, count in heard) > self.alive:  # one started since the refresh
            self.alive = max(count for _, count in heard)
        short = [(path, count) for path, count in heard if count < self.alive]
        if not short:
            return
        # The count of live processes may be older than a graceful stop: ask again before counting.
        try:
            alive = await self.count_alive(client)
        except CONNECTION_ERRORS:
            return
        raise_if_cancelling()
        for path, count in short:
            if count < alive:
                delivery.record_drop(delivery.BACKPLANE_MISSED, path, alive - count)

    def add_alive_query(self, pipe: redis.asyncio.client.Pipeline, now: int) -> None:
        """Add to ``pipe`` the query of the live processes (to pair with another read)."""
        pipe.zrangebyscore(self.processes, f"({now}", "+inf")

    async def claim(self, client: redis.asyncio.Redis, process: str) -> bool:
        """Take a dead process out; True for the one process that did (it cleans up after it)."""
        if not await client.zrem(self.processes, process):
            return False  # another process claimed it
        await client.hdel(self.metrics, process)
        return True

    async def leave(self, client: redis.asyncio.Redis) -> None:
        """Take this process out (a graceful stop)."""
        async with client.pipeline(transaction=False) as pipe:
            pipe.zrem(self.processes, self.process)
            pipe.hdel(self.metrics, self.process)
            await pipe.execute()

    async def snapshots(self, client: redis.asyncio.Redis) -> list[dict[str, Any]]:
        """The metrics snapshots the *other* live processes last shared."""
        now = await redis_time_ms(client)
        async with client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.metrics)
            self.add_alive_query(pipe, now)
            blobs, alive = await pipe.execute()
        return live_snapshots(blobs, alive, exclude=self.process)

    def snapshots_sync(self, client: redis.Redis) -> list[dict[str, Any]]:
        """The snapshots of every live server process, from a process without a loop."""
        now = redis_time_ms_sync(client)
        blobs = client.hgetall(self.metrics)
        alive = client.zrangebyscore(self.processes, f"({now}", "+inf")
        return live_snapshots(blobs, alive, exclude=None)


def live_snapshots(blobs: dict[Any, Any], alive: list[Any], exclude: str | None) -> list[dict[str, Any]]:
    """The readable snapshots of the processes in ``alive``, but ``exclude``'s."""
    live = {text(process) for process in alive}
    found = []
    for process, blob in blobs.items():
        if text(process) not in live or text(process) == exclude:
            continue
        try:
            found.append(codec.loads(blob))
        except ValueError:
            logger.warning("Ignoring an unreadable metrics snapshot in Redis")
    return found
