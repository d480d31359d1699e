"""Presence and metrics shared through Redis, beside the backplane and never in its way.

The `~tornado_websockets.broker_redis.RedisBroker` starts one `SharedPresence` with its own Redis
connection and its own task: a presence write that fails (Redis at ``maxmemory`` with
``noeviction``, Redis restarting) is logged and retried, and never costs a delivered frame.

What is written is what changed: a connection that opens, closes, joins or leaves a room is one
pipelined write, whatever the number of connections. Queries read one key, never the keyspace.
Keys, for a channel ``C``:

- ``C:processes`` (sorted set): each live server process, scored with the Redis time (ms) its
  entry expires at; refreshed every third of ``ttl``. A process whose score is past is dead.
- ``C:metrics`` (hash): process -> its last metrics snapshot (JSON), refreshed as often.
- ``C:members:P`` and ``C:members:P:R`` (hashes): connection -> ``[process, user, name]`` for
  the connections of path ``P`` and of its room ``R``.
- ``C:users:P:R`` (hash): who (a user, or an anonymous connection) -> how many of their
  connections are in room ``R``, all processes together. ``joined`` is sent when it goes from 0
  to 1 and ``left`` when it comes back to 0: once per user across the cluster.
- ``C:entries:<process>`` (set): what the process wrote, so that another one can take it out.

A dead process (killed, frozen, cut off for longer than ``ttl``) is reaped by the first live
process that sees it: it claims the process (``ZREM``), removes its members, and sends ``left``
for the users that had no other connection in a room. Queries leave out dead processes' members
at once, before the reaping.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
from redis.backoff import NoBackoff

from tornado_websockets import codec
from tornado_websockets.presence import JOINED_EVENT, LEFT_EVENT, Member, display_name, identity

__all__ = ["PresenceKeys", "SharedPresence"]

logger = logging.getLogger(__name__)

_ERRORS = (redis.RedisError, OSError)

# KEYS: the users hash. ARGV: who. One connection less; the field goes at 0 (so a joining user
# on another process counts from 0 again). Returns the count left.
_DECREMENT = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return n
"""


def _check_cancelled() -> None:
    """Raise `asyncio.CancelledError` if the task was cancelled during a command that lost it
    (redis-py does, now and then): the loop below would never end, nor would the shutdown."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass(frozen=True, slots=True)
class PresenceKeys:
    """The Redis keys of presence and metrics for one channel (see the module's docstring)."""

    channel: str

    @property
    def processes(self) -> str:
        """The live server processes and when each expires."""
        return f"{self.channel}:processes"

    @property
    def metrics(self) -> str:
        """Each process's last metrics snapshot."""
        return f"{self.channel}:metrics"

    def members(self, path: str, room: str | None) -> str:
        """The connections of a path, or of one of its rooms."""
        return f"{self.channel}:members:{path}" if room is None else f"{self.channel}:members:{path}:{room}"

    def users(self, path: str, room: str) -> str:
        """How many connections each user has in a room, every process counted."""
        return f"{self.channel}:users:{path}:{room}"

    def entries(self, process: str) -> str:
        """What one process wrote."""
        return f"{self.channel}:entries:{process}"


@dataclass(frozen=True, slots=True)
class _Change:
    path: str
    room: str | None
    connection: str
    present: bool  # joined (or opened) when True, left (or closed) when False
    who: str  # identity as JSON
    member: bytes  # [process, user, name] as JSON
    announce: dict[str, Any] | None  # joined/left data, when the path sends presence events

    def entry(self) -> bytes:
        return codec.dumps([self.path, self.room, self.connection, self.who, self.announce])


class SharedPresence:
    """One server process's members and metrics in Redis (see the module's docstring).

    :param url: the Redis URL (without ``?channel=``).
    :param channel: the backplane's channel, prefix of every key.
    :param process: this process's id (its broker's).
    :param ttl: seconds after which a process that stopped refreshing counts as dead.
    :param timeout: seconds allowed for each command.
    :param cluster: ``url`` names a node of a Redis Cluster.
    """

    def __init__(
        self, url: str, channel: str, process: str, ttl: float, timeout: float, cluster: bool = False
    ) -> None:
        self.url = url
        self.cluster = cluster
        self._decrement = ""  # the sha of _DECREMENT, loaded on every primary
        self.keys = PresenceKeys(channel)
        self.process = process
        self.ttl = ttl
        self.timeout = timeout
        #: Server processes alive at the last refresh (this one included); 0 before the first.
        self.alive = 0
        #: True while Redis takes the writes; False after a failure until all is written again.
        self.healthy = False
        self._changes: collections.deque[_Change] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._client: redis.asyncio.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._sync_client: redis.Redis | None = None

    def __repr__(self) -> str:
        return f"<SharedPresence {self.keys.channel!r} {self.process[:8]} alive={self.alive}>"

    # Loop side -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start writing, on the running loop."""
        if self._task is not None and not self._task.done():
            return
        self._wakeup = asyncio.Event()
        kind: Any = redis.asyncio.cluster.RedisCluster if self.cluster else redis.asyncio.Redis
        self._client = kind.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
        )
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self!r}")

    async def stop(self) -> None:
        """Write what is pending, take this process out of Redis, close the connection."""
        task, self._task = self._task, None
        client, self._client = self._client, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=self.timeout)
        if client is not None:
            with contextlib.suppress(*_ERRORS, TimeoutError):
                await asyncio.wait_for(self._flush_and_leave(client), self.timeout)
            with contextlib.suppress(*_ERRORS):
                await client.aclose()
        self._changes.clear()
        self.close_sync()

    async def _flush_and_leave(self, client: redis.asyncio.Redis) -> None:
        # The connections closed at shutdown: their users' ``left`` goes out (to the other
        # processes' members) before this process's entries are taken out without a word.
        if self.healthy:
            await self._write_changes(client)
        await self._leave_redis(client)

    def changed(self, socket: Any, room: str | None, present: bool) -> None:
        """A connection opened (``room`` None) or joined ``room`` (``present``), or the reverse.

        With presence events on the path, ``joined`` / ``left`` are sent once Redis has counted
        the user's connections in the room across every process.
        """
        self._changes.append(self._change(socket, room, present, announce=True))
        if self._wakeup is not None:
            self._wakeup.set()

    def _change(self, socket: Any, room: str | None, present: bool, announce: bool) -> _Change:
        websocket = socket.websocket
        data = None
        if announce and room is not None and websocket.presence_events:
            data = {"room": room, "user": socket.user_id, "name": display_name(socket)}
        member = codec.dumps([self.process, socket.user_id, display_name(socket)])
        who = codec.dumps(identity(socket)).decode()
        return _Change(websocket.path, room, socket.id, present, who, member, data)

    async def _run(self) -> None:
        assert self._wakeup is not None  # both made by start()
        assert self._client is not None
        loop = asyncio.get_running_loop()
        refresh_due = 0.0
        failures = 0
        while True:
            _check_cancelled()
            try:
                if not self.healthy:
                    await self._write_all(self._client)
                    _check_cancelled()
                    if failures:
                        logger.warning("Presence sharing through Redis works again")
                    self.healthy, failures = True, 0
                if loop.time() >= refresh_due:
                    await self._refresh(self._client)
                    _check_cancelled()
                    refresh_due = loop.time() + self.ttl / 3
                await self._write_changes(self._client)
                _check_cancelled()
            except _ERRORS as error:
                if failures == 0:
                    logger.warning("Presence sharing through Redis failed (%s); delivery goes on", error)
                self.healthy = False
                self._changes.clear()  # all is written again once Redis takes writes
                failures += 1
                await asyncio.sleep(min(self.ttl / 3, 0.1 * 2 ** min(failures, 6)))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(refresh_due - loop.time(), 0.01))
            self._wakeup.clear()

    async def _now(self, client: redis.asyncio.Redis) -> int:
        """Redis's time in milliseconds: every process scores with the same clock."""
        seconds, microseconds = await client.time()
        return int(seconds) * 1000 + int(microseconds) // 1000

    async def _refresh(self, client: redis.asyncio.Redis) -> None:
        """Say this process lives, share its metrics, count the live ones, reap the dead."""
        from tornado_websockets import metrics

        now = await self._now(client)
        async with client.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.processes, {self.process: now + int(self.ttl * 1000)})
            pipe.hset(self.keys.metrics, self.process, codec.dumps(metrics.snapshot()))
            pipe.zcount(self.keys.processes, f"({now}", "+inf")
            pipe.zrangebyscore(self.keys.processes, "-inf", now)
            _, _, alive, dead = await pipe.execute()
        self.alive = int(alive)
        for process in dead:
            await self._reap(client, process.decode() if isinstance(process, bytes) else str(process))

    async def _write_changes(self, client: redis.asyncio.Redis) -> None:
        """Write the changes waiting, in one pipeline; send the joined/left they decide."""
        if not self._changes:
            return
        batch = list(self._changes)
        self._changes.clear()
        decrement = await self._decrement_sha(client)
        async with client.pipeline(transaction=False) as pipe:
            for change in batch:
                members = self.keys.members(change.path, change.room)
                if change.present:
                    pipe.hset(members, change.connection, change.member)
                    pipe.sadd(self.keys.entries(self.process), change.entry())
                else:
                    pipe.hdel(members, change.connection)
                    pipe.srem(self.keys.entries(self.process), change.entry())
                if change.room is not None:
                    users = self.keys.users(change.path, change.room)
                    if change.present:
                        pipe.hincrby(users, change.who, 1)
                    else:
                        pipe.execute_command("EVALSHA", decrement, 1, users, change.who)
            results = await pipe.execute()
        counts = iter(_counts(batch, results))
        for change in batch:
            if change.room is None:
                continue
            count = int(next(counts))
            if change.announce is not None and count == (1 if change.present else 0):
                _announce(
                    change.path, JOINED_EVENT if change.present else LEFT_EVENT, change.announce, change
                )

    async def _decrement_sha(self, client: Any) -> str:
        """The decrement script's sha, loaded (on every primary of a cluster) when first needed."""
        if not self._decrement:
            self._decrement = str(_text(await client.script_load(_DECREMENT)))
        return self._decrement

    async def _write_all(self, client: redis.asyncio.Redis) -> None:
        """After a failure (Redis restarted, flushed, full): this process's members written again.

        No ``joined`` is sent for them: their users were there all along.
        """
        from tornado_websockets.tornadowrapper import TornadoWrapper

        self._decrement = ""  # Redis may have restarted without its scripts
        await self._leave_redis(client)
        changes: collections.deque[_Change] = collections.deque()
        for websocket in TornadoWrapper.websockets.values():
            for socket in websocket.handlers:
                changes.append(self._change(socket, None, True, announce=False))
                for room in websocket.rooms.rooms_of(socket):
                    changes.append(self._change(socket, room, True, announce=False))
        self._changes = changes
        await self._write_changes(client)

    async def _leave_redis(self, client: redis.asyncio.Redis) -> None:
        """Take out what this process wrote (at stop, and before writing it all again)."""
        await self._remove_entries(client, self.process, announce=False)
        async with client.pipeline(transaction=False) as pipe:
            pipe.zrem(self.keys.processes, self.process)
            pipe.hdel(self.keys.metrics, self.process)
            await pipe.execute()

    async def _reap(self, client: redis.asyncio.Redis, process: str) -> None:
        """Take out a dead process's members, once (whoever removes it from the set does it)."""
        if not await client.zrem(self.keys.processes, process):
            return  # another process reaped it
        await client.hdel(self.keys.metrics, process)
        left = await self._remove_entries(client, process, announce=True)
        logger.warning(
            "Server process %s stopped refreshing its presence: its members are gone (%d left)",
            process[:8],
            left,
        )

    async def _remove_entries(self, client: redis.asyncio.Redis, process: str, announce: bool) -> int:
        """Remove what ``process`` wrote; with ``announce``, send ``left`` for the users it took out."""
        key = self.keys.entries(process)
        entries = [codec.loads(raw) for raw in await client.smembers(key)]
        decrement = await self._decrement_sha(client)
        async with client.pipeline(transaction=False) as pipe:
            for path, room, connection, who, _ in entries:
                pipe.hdel(self.keys.members(path, room), connection)
                if room is not None:
                    pipe.execute_command("EVALSHA", decrement, 1, self.keys.users(path, room), who)
            pipe.delete(key)
            results = await pipe.execute()
        left = 0
        position = 0
        for path, room, _, _, data in entries:
            position += 1
            if room is None:
                continue
            count = int(results[position])
            position += 1
            if announce and data is not None and count == 0:
                left += 1
                _announce(path, LEFT_EVENT, data, None)
        return left

    # Queries ------------------------------------------------------------------------------------

    async def members(self, path: str, room: str | None) -> tuple[Member, ...] | None:
        """The members of the *other* live processes; None when Redis cannot answer."""
        client = self._client
        if client is None:
            return None
        try:
            now = await self._now(client)
            async with client.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.keys.members(path, room))
                pipe.zrangebyscore(self.keys.processes, f"({now}", "+inf")
                rows, alive = await pipe.execute()
        except _ERRORS as error:
            logger.warning("Presence from this process only: Redis failed (%s)", error)
            return None
        return _members(rows, alive, exclude=self.process)

    async def snapshots(self) -> list[dict[str, Any]] | None:
        """The metrics snapshots of the *other* live processes; None when Redis cannot answer."""
        client = self._client
        if client is None:
            return None
        try:
            now = await self._now(client)
            async with client.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.keys.metrics)
                pipe.zrangebyscore(self.keys.processes, f"({now}", "+inf")
                blobs, alive = await pipe.execute()
        except _ERRORS as error:
            logger.warning("Metrics from this process only: Redis failed (%s)", error)
            return None
        return _snapshots(blobs, alive, exclude=self.process)

    # Thread side (a process that runs no server) ------------------------------------------------

    def members_sync(self, path: str, room: str | None) -> tuple[Member, ...]:
        """The members of every live server process, from a process without a loop."""
        client = self._sync()
        seconds, microseconds = client.time()
        now = int(seconds) * 1000 + int(microseconds) // 1000
        rows = client.hgetall(self.keys.members(path, room))
        alive = client.zrangebyscore(self.keys.processes, f"({now}", "+inf")
        return _members(rows, alive, exclude=None)

    def snapshots_sync(self) -> list[dict[str, Any]]:
        """The snapshots of every live server process, from a process without a loop."""
        client = self._sync()
        seconds, microseconds = client.time()
        now = int(seconds) * 1000 + int(microseconds) // 1000
        blobs = client.hgetall(self.keys.metrics)
        alive = client.zrangebyscore(self.keys.processes, f"({now}", "+inf")
        return _snapshots(blobs, alive, exclude=None)

    def _sync(self) -> redis.Redis:
        if self._sync_client is None:
            kind: Any = redis.cluster.RedisCluster if self.cluster else redis.Redis
            self._sync_client = kind.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
            )
        return self._sync_client

    def close_sync(self) -> None:
        """Close the connection the sync queries opened."""
        client, self._sync_client = self._sync_client, None
        if client is not None:
            client.close()


def _counts(batch: list[_Change], results: list[Any]) -> list[Any]:
    """The user counts among a pipeline's results: the third result of each room change."""
    counts = []
    position = 0
    for change in batch:
        position += 2
        if change.room is not None:
            counts.append(results[position])
            position += 1
    return counts


def _announce(path: str, event: str, data: dict[str, Any], change: _Change | None) -> None:
    """Send ``joined`` or ``left`` to the room, through the backplane (so to every process)."""
    from tornado_websockets.tornadowrapper import TornadoWrapper

    websocket = TornadoWrapper.runtime.websocket_for(path)
    if websocket is None:
        return
    skip = change.connection if change is not None else None
    try:
        websocket.emit(event, data, room=data["room"], skip=skip)
    except Exception:
        logger.exception("Sending %r to %r on %s failed", event, data.get("room"), path)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _members(rows: dict[Any, Any], alive: list[Any], exclude: str | None) -> tuple[Member, ...]:
    live = {_text(process) for process in alive}
    found: list[Member] = []
    for connection, blob in rows.items():
        try:
            process, user, name = codec.loads(blob)
        except (ValueError, TypeError):
            logger.warning("Ignoring unreadable presence data of connection %s", _text(connection))
            continue
        if process in live and process != exclude:
            found.append(Member(_text(connection), user, name, process))
    return tuple(found)


def _snapshots(blobs: dict[Any, Any], alive: list[Any], exclude: str | None) -> list[dict[str, Any]]:
    live = {_text(process) for process in alive}
    found = []
    for process, blob in blobs.items():
        if _text(process) not in live or _text(process) == exclude:
            continue
        try:
            found.append(codec.loads(blob))
        except ValueError:
            logger.warning("Ignoring an unreadable metrics snapshot in Redis")
    return found
