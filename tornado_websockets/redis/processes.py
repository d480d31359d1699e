"""Which server processes live, and their metrics, shared through Redis beside the backplane.

Keys, for a channel ``C``:

- ``C:processes`` (sorted set): each live server process, scored with the Redis time (ms) its
  entry expires at; refreshed every third of ``ttl``. A process whose score is past is dead.
- ``C:metrics`` (hash): process -> its last metrics snapshot (JSON), refreshed as often.

- ``C:reaped:<process>`` (string): ``reaping`` while a live process takes out what a dead one
  left, ``reaped`` once done (kept a day): how a frozen process that comes back learns that its
  users were sent ``left``.

A dead process (killed, frozen, cut off for longer than ``ttl``) is claimed by the first live
process that sees it (`ProcessDirectory.claim`: a marker only one process sets, then a ``ZREM``
that only happens if the dead one has not refreshed since), which then takes out what it left
(see `tornado_websockets.redis.presence`). A process that finds itself no longer listed at its
refresh (`ProcessDirectory.taken_out`: it was frozen and reaped, or Redis lost its data) writes
its members again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.client

from tornado_websockets import codec, delivery
from tornado_websockets.redis.client import CONNECTION_ERRORS, redis_time_ms, redis_time_ms_sync
from tornado_websockets.redis.common import raise_if_cancelling, text

__all__ = ["REAPED", "REAPING", "ProcessDirectory", "live_snapshots"]

# Presence's logger: liveness and metrics were part of it before they moved.
logger = logging.getLogger("tornado_websockets.presence_redis")

#: The marker of a process being reaped, then reaped (see the module's docstring).
REAPING = "reaping"
REAPED = "reaped"
#: How long the ``reaped`` marker waits for its process to come back (a freeze of a day at most).
REAPED_KEEP_MS = 24 * 3600 * 1000

# KEYS: the processes. ARGV: the process, the Redis time (ms) it was seen dead at. Takes it out
# only if it has not refreshed since: a frozen process that came back in between stays listed.
_CLAIM = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then
  return 0
end
return redis.call('ZREM', KEYS[1], ARGV[1])
"""


class ProcessDirectory:
    """One server process's liveness and metrics in Redis, and the other processes' as seen from it.

    :param channel: the backplane's channel, prefix of the keys.
    :param process: this process's id (its broker's).
    :param ttl: seconds after which a process that stopped refreshing counts as dead.
    """

    def __init__(self, channel: str, process: str, ttl: float) -> None:
        self.channel = channel
        self.processes = f"{channel}:processes"
        self.metrics = f"{channel}:metrics"
        self.process = process
        self.ttl = ttl
        #: Server processes alive at the last refresh (this one included); 0 before the first.
        self.alive = 0
        #: Listed in ``C:processes`` since the last refresh (False before the first, after `leave`).
        self.listed = False
        #: The last refresh found this process no longer listed although it had been: another
        #: process reaped it (see `was_reaped`), or Redis lost its data.
        self.taken_out = False
        self._checked_at = 0  # the Redis time (ms) of the last refresh: what `claim` compares with

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
            added, *_, alive, dead = await pipe.execute()
        self.alive = int(alive)
        self.taken_out = bool(added) and self.listed
        self.listed = True
        self._checked_at = now
        return [text(process) for process in dead]

    def reaped_key(self, process: str) -> str:
        """The key of ``process``'s reaping marker."""
        return f"{self.channel}:reaped:{process}"

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
        """Take a process seen dead at the last refresh out; True for the one process that did
        (it cleans up after it, then calls `reaped`).

        The marker comes first, so that a frozen process that comes back and finds itself taken
        out always sees it; the ``ZREM`` only happens if the process has not refreshed since.
        """
        marker = self.reaped_key(process)
        if not await client.set(marker, REAPING, nx=True, px=max(int(self.ttl * 4000), 30_000)):
            return False  # another process claims it
        if not await client.eval(_CLAIM, 1, self.processes, process, self._checked_at):
            await client.delete(marker)  # it came back, or another process took it out before
            return False
        await client.hdel(self.metrics, process)
        return True

    async def reaped(self, client: redis.asyncio.Redis, process: str) -> None:
        """Say that what ``process`` left is taken out (its users were sent ``left``)."""
        await client.set(self.reaped_key(process), REAPED, px=REAPED_KEEP_MS)

    async def was_reaped(self, client: redis.asyncio.Redis, patience: float) -> bool:
        """Whether this process, found `taken_out`, was reaped by another (else Redis lost its
        data); waits up to ``patience`` seconds for a reaping under way to end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        marker = self.reaped_key(self.process)
        state = await client.get(marker)
        while state is not None and text(state) == REAPING and loop.time() < deadline:
            await asyncio.sleep(0.05)
            state = await client.get(marker)
        await client.delete(marker)
        return state is not None

    async def leave(self, client: redis.asyncio.Redis) -> None:
        """Take this process out (a graceful stop)."""
        async with client.pipeline(transaction=False) as pipe:
            pipe.zrem(self.processes, self.process)
            pipe.hdel(self.metrics, self.process)
            await pipe.execute()
        self.listed = False

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
