"""Presence shared through Redis, beside the backplane and never in its way.

The `~tornado_websockets.redis.broker.RedisBroker` starts one `SharedPresence` with its own Redis
connection and its own task, given the server it serves (its host): a presence write that fails
(Redis at ``maxmemory`` with ``noeviction``, Redis restarting) is logged and retried, and never
costs a delivered frame.

What is written is what changed: a connection that opens, closes, joins or leaves a room is one
pipelined write, whatever the number of connections. Queries read one key, never the keyspace.
Keys, for a channel ``C``:

- ``C:processes`` and ``C:metrics``: the live processes and their metrics, see
  `tornado_websockets.redis.processes` (a `~tornado_websockets.redis.processes.ProcessDirectory`).
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

A process that was only frozen (a long GC pause, a VM migration, ``SIGSTOP``) finds at its next
refresh that it is no longer listed: it writes its members again and sends ``joined`` where a
user's count goes back from 0 (their ``left`` went out when it was reaped). The same after Redis
lost its data (restarted empty, ``FLUSHALL``), without ``joined``: nobody was sent ``left``.

Every write goes in slices of at most `SharedPresence.slice_size` changes, one pipeline each,
the loop serving other connections between two: rewriting 50,000 members after a Redis failure
is no one long stall.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from tornado_websockets import codec
from tornado_websockets.presence import JOINED_EVENT, LEFT_EVENT, Member, display_name, identity
from tornado_websockets.redis.client import (
    CONNECTION_ERRORS,
    async_client,
    redis_time_ms,
    redis_time_ms_sync,
    sync_client,
)
from tornado_websockets.redis.common import raise_if_cancelling, text
from tornado_websockets.redis.processes import ProcessDirectory

if TYPE_CHECKING:
    from tornado_websockets.types import BrokerHost

__all__ = ["PresenceKeys", "SharedPresence"]

# The name logging configurations use, from before the move.
logger = logging.getLogger("tornado_websockets.presence_redis")

# KEYS: the users hash. ARGV: who. One connection less; the field goes at 0 (so a joining user
# on another process counts from 0 again). Returns the count left.
_DECREMENT = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return n
"""


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
    quiet: bool  # written without sending joined/left (kept in the entry for a reaper's left)

    def entry(self) -> bytes:
        return codec.dumps([self.path, self.room, self.connection, self.who, self.announce])


class SharedPresence:
    """One server process's members (and, through its `ProcessDirectory`, its liveness and metrics)
    in Redis (see the module's docstring).

    :param url: the Redis URL (without ``?channel=``).
    :param channel: the backplane's channel, prefix of every key.
    :param process: this process's id (its broker's).
    :param ttl: seconds after which a process that stopped refreshing counts as dead.
    :param timeout: seconds allowed for each command.
    :param cluster: ``url`` names a node of a Redis Cluster.
    """

    #: The most changes written in one pipeline: the loop serves other connections between two.
    slice_size = 500

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
        #: The live processes and their metrics.
        self.directory = ProcessDirectory(channel, process, ttl)
        self.host: BrokerHost | None = None
        #: True while Redis takes the writes; False after a failure until all is written again.
        self.healthy = False
        self._changes: collections.deque[_Change] = collections.deque()
        # While all the members are written again: the connections not written yet, whose
        # changes are not queued (their state is read when their turn comes).
        self._rewriting: set[str] | None = None
        self._wakeup: asyncio.Event | None = None
        self._client: redis.asyncio.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._sync_client: redis.Redis | None = None

    def __repr__(self) -> str:
        return f"<SharedPresence {self.keys.channel!r} {self.process[:8]} alive={self.alive}>"

    @property
    def alive(self) -> int:
        """Server processes alive at the last refresh (this one included); 0 before the first."""
        return self.directory.alive

    @alive.setter
    def alive(self, count: int) -> None:
        self.directory.alive = count

    # Loop side -----------------------------------------------------------------------------------

    def start(self, host: BrokerHost | None = None) -> None:
        """Start writing, on the running loop, the members of ``host``'s paths."""
        if host is not None:
            self.host = host
        if self._task is not None and not self._task.done():
            return
        self._wakeup = asyncio.Event()
        self._client = async_client(self.url, self.timeout, self.cluster)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self!r}")

    async def stop(self) -> None:
        """Write what is pending, take this process out of Redis, close the connection."""
        task, self._task = self._task, None
        client, self._client = self._client, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=self.timeout)
        if client is not None:
            with contextlib.suppress(*CONNECTION_ERRORS, TimeoutError):
                await asyncio.wait_for(self._flush_and_leave(client), self.timeout)
            with contextlib.suppress(*CONNECTION_ERRORS):
                await client.aclose()
        self._changes.clear()
        self.close_sync()

    async def _flush_and_leave(self, client: redis.asyncio.Redis) -> None:
        # The connections closed at shutdown: their users' ``left`` goes out (to the other
        # processes' members) before this process's entries are taken out without a word.
        if self.healthy:
            await self._write_changes(client)
        await self._leave_redis(client)

    def changed(self, socket: Any, room: str | None, present: bool) -> bool:
        """A connection opened (``room`` None) or joined ``room`` (``present``), or the reverse.

        With presence events on the path, ``joined`` / ``left`` are sent once Redis has counted
        the user's connections in the room across every process. Returns True then (they are
        decided here for every process), False while the writes fail (decide them locally).
        """
        if self._wakeup is None:  # never started, made for queries only: it writes nothing
            return False
        if self._rewriting is None or socket.id not in self._rewriting:
            # While the writes fail the connection announces itself: Redis must not do it again.
            self._changes.append(self._change(socket, room, present, quiet=not self.healthy))
            self._wakeup.set()
        return self.healthy

    def _change(self, socket: Any, room: str | None, present: bool, quiet: bool) -> _Change:
        websocket = socket.websocket
        data = None
        if room is not None and websocket.presence_events:
            data = {"room": room, "user": socket.user_id, "name": display_name(socket)}
        member = codec.dumps([self.process, socket.user_id, display_name(socket)])
        who = codec.dumps(identity(socket)).decode()
        return _Change(websocket.path, room, socket.id, present, who, member, data, quiet)

    async def _run(self) -> None:
        assert self._wakeup is not None  # both made by start()
        assert self._client is not None
        loop = asyncio.get_running_loop()
        refresh_due = 0.0
        failures = 0
        while True:
            raise_if_cancelling()
            try:
                # The refresh comes first: it says whether this process was taken out meanwhile
                # (frozen and reaped), and listed afresh it cannot be reaped during a rewrite.
                if not self.healthy or loop.time() >= refresh_due:
                    reaped = await self._refresh(self._client)
                    raise_if_cancelling()
                    refresh_due = loop.time() + self.ttl / 3
                    if reaped is not None or not self.healthy:
                        await self._write_all(self._client, announce=bool(reaped))
                        raise_if_cancelling()
                    if not self.healthy and failures:
                        logger.warning("Presence sharing through Redis works again")
                    self.healthy, failures = True, 0
                await self._write_changes(self._client)
                raise_if_cancelling()
            except CONNECTION_ERRORS as error:
                if failures == 0:
                    logger.warning("Presence sharing through Redis failed (%s); delivery goes on", error)
                self.healthy = False
                self._changes.clear()  # all is written again once Redis takes writes
                self._rewriting = None
                failures += 1
                await asyncio.sleep(min(self.ttl / 3, 0.1 * 2 ** min(failures, 6)))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(refresh_due - loop.time(), 0.01))
            self._wakeup.clear()

    async def _refresh(self, client: redis.asyncio.Redis) -> bool | None:
        """Say this process lives, share its metrics, count the live ones, reap the dead.

        Returns None, or, when this process was found taken out, whether another one reaped it
        (its users were sent ``left``) rather than Redis losing its data.
        """
        snapshot = {} if self.host is None else self.host.snapshot()
        dead = await self.directory.refresh(client, snapshot)
        reaped = None
        if self.directory.taken_out:
            reaped = await self.directory.was_reaped(client, patience=self.ttl)
            logger.warning(
                "This server process was %s: its members are written again",
                "taken for dead by another (frozen?)" if reaped else "lost by Redis",
            )
        for process in dead:
            await self._reap(client, process)
        return reaped

    async def _write_changes(self, client: redis.asyncio.Redis) -> None:
        """Write the changes waiting, a slice at a time; send the joined/left they decide."""
        while self._changes:
            count = min(len(self._changes), self.slice_size)
            await self._write_batch(client, [self._changes.popleft() for _ in range(count)])
            raise_if_cancelling()

    async def _write_batch(self, client: redis.asyncio.Redis, batch: list[_Change]) -> None:
        """Write some changes in one pipeline; send the joined/left they decide."""
        if not batch:
            return
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
            if change.announce is not None and not change.quiet and count == (1 if change.present else 0):
                self._announce(
                    change.path, JOINED_EVENT if change.present else LEFT_EVENT, change.announce, change
                )

    async def _decrement_sha(self, client: Any) -> str:
        """The decrement script's sha, loaded (on every primary of a cluster) when first needed."""
        if not self._decrement:
            self._decrement = text(await client.script_load(_DECREMENT))
        return self._decrement

    async def _write_all(self, client: redis.asyncio.Redis, announce: bool) -> None:
        """This process's members written again, a slice at a time: after a failure (Redis
        restarted, flushed, full), or after this process was taken out.

        With ``announce`` (another process reaped this one and sent ``left`` for its users),
        ``joined`` goes out where a user's count comes back from 0; else their users were there
        all along. Changes made meanwhile to a connection not written yet are left to the rewrite,
        which reads the connection's state when its turn comes; the others are queued after it.
        """
        self._decrement = ""  # Redis may have restarted without its scripts
        await self._remove_entries(client, self.process, announce=False)
        websockets = [] if self.host is None else list(self.host.websockets.values())
        sockets = [socket for websocket in websockets for socket in list(websocket.handlers)]
        self._changes.clear()  # what the rewrite writes is the connections' state now
        self._rewriting = {socket.id for socket in sockets}
        batch: list[_Change] = []
        try:
            for socket in sockets:
                self._rewriting.discard(socket.id)
                if socket.is_closed:
                    continue
                # A connection's changes are read at once, so that its later ones queue after them.
                batch.append(self._change(socket, None, True, quiet=True))
                for room in socket.websocket.rooms.rooms_of(socket):
                    batch.append(self._change(socket, room, True, quiet=not announce))
                while len(batch) >= self.slice_size:
                    await self._write_batch(client, batch[: self.slice_size])
                    raise_if_cancelling()
                    del batch[: self.slice_size]
            await self._write_batch(client, batch)
        finally:
            self._rewriting = None

    async def _leave_redis(self, client: redis.asyncio.Redis) -> None:
        """Take out what this process wrote (at stop, and before writing it all again)."""
        await self._remove_entries(client, self.process, announce=False)
        await self.directory.leave(client)

    async def _reap(self, client: redis.asyncio.Redis, process: str) -> None:
        """Take out a dead process's members, once (whoever removes it from the set does it)."""
        if not await self.directory.claim(client, process):
            return  # another process reaped it
        left = await self._remove_entries(client, process, announce=True)
        await self.directory.reaped(client, process)
        logger.warning(
            "Server process %s stopped refreshing its presence: its members are gone (%d left)",
            process[:8],
            left,
        )

    async def _remove_entries(self, client: redis.asyncio.Redis, process: str, announce: bool) -> int:
        """Remove what ``process`` wrote, a slice at a time; with ``announce``, send ``left`` for
        the users it took out. Returns how many ``left`` were sent."""
        key = self.keys.entries(process)
        left = 0
        while True:
            # Read, then taken out of the set with their rows and counts: a failure in between
            # leaves them to be taken out again, not forgotten with their users counted.
            raws = await client.srandmember(key, self.slice_size)
            raise_if_cancelling()
            if not raws:
                return left
            assert isinstance(raws, list)  # with a count: a list
            entries = [codec.loads(raw) for raw in raws]
            decrement = await self._decrement_sha(client)
            async with client.pipeline(transaction=False) as pipe:
                for (path, room, connection, who, _), raw in zip(entries, raws, strict=True):
                    pipe.hdel(self.keys.members(path, room), connection)
                    if room is not None:
                        pipe.execute_command("EVALSHA", decrement, 1, self.keys.users(path, room), who)
                    pipe.srem(key, raw)
                results = await pipe.execute()
            raise_if_cancelling()
            position = 0
            for path, room, _, _, data in entries:
                position += 2  # the row, the entry
                if room is None:
                    continue
                count = int(results[position - 1])
                position += 1
                if announce and data is not None and count == 0:
                    left += 1
                    self._announce(path, LEFT_EVENT, data, None)

    def _announce(self, path: str, event: str, data: dict[str, Any], change: _Change | None) -> None:
        """Send ``joined`` or ``left`` to the room, through the backplane (so to every process)."""
        websocket = None if self.host is None else self.host.websocket_for(path)
        if websocket is None:
            return
        skip = change.connection if change is not None else None
        try:
            websocket.emit(event, data, room=data["room"], skip=skip)
        except Exception:
            logger.exception("Sending %r to %r on %s failed", event, data.get("room"), path)

    # Queries ------------------------------------------------------------------------------------

    async def members(self, path: str, room: str | None) -> tuple[Member, ...] | None:
        """The members of the *other* live processes; None when Redis cannot answer."""
        client = self._client
        if client is None:
            return None
        try:
            now = await redis_time_ms(client)
            async with client.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.keys.members(path, room))
                self.directory.add_alive_query(pipe, now)
                rows, alive = await pipe.execute()
        except CONNECTION_ERRORS as error:
            logger.warning("Presence from this process only: Redis failed (%s)", error)
            return None
        return _members(rows, alive, exclude=self.process)

    async def snapshots(self) -> list[dict[str, Any]] | None:
        """The metrics snapshots of the *other* live processes; None when Redis cannot answer."""
        client = self._client
        if client is None:
            return None
        try:
            return await self.directory.snapshots(client)
        except CONNECTION_ERRORS as error:
            logger.warning("Metrics from this process only: Redis failed (%s)", error)
            return None

    # Thread side (a process that runs no server) ------------------------------------------------

    def members_sync(self, path: str, room: str | None) -> tuple[Member, ...]:
        """The members of every live server process, from a process without a loop."""
        client = self._sync()
        now = redis_time_ms_sync(client)
        rows = client.hgetall(self.keys.members(path, room))
        alive = client.zrangebyscore(self.keys.processes, f"({now}", "+inf")
        return _members(rows, alive, exclude=None)

    def snapshots_sync(self) -> list[dict[str, Any]]:
        """The snapshots of every live server process, from a process without a loop."""
        return self.directory.snapshots_sync(self._sync())

    def _sync(self) -> redis.Redis:
        if self._sync_client is None:
            self._sync_client = sync_client(self.url, self.timeout, self.cluster)
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


def _members(rows: dict[Any, Any], alive: list[Any], exclude: str | None) -> tuple[Member, ...]:
    live = {text(process) for process in alive}
    found: list[Member] = []
    for connection, blob in rows.items():
        try:
            process, user, name = codec.loads(blob)
        except (ValueError, TypeError):
            logger.warning("Ignoring unreadable presence data of connection %s", text(connection))
            continue
        if process in live and process != exclude:
            found.append(Member(text(connection), user, name, process))
    return tuple(found)
