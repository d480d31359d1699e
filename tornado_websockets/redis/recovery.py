"""Shared recovery, the half of the Redis backplane that numbers, reads back and fills gaps.

`SharedRecovery` sits beside the broker's delivery (`tornado_websockets.redis.broker`): it
declares the recovering paths when the broker connects, reads a joining connection's missed
frames (`replay_since`), delivers the frames a process missed while it resubscribed, and sends
``resync`` when Redis no longer keeps them. The keys and scripts are in
`tornado_websockets.redis.replay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
import weakref
from typing import TYPE_CHECKING, Any, Protocol

import redis
import redis.asyncio
from redis.commands.core import AsyncScript

from tornado_websockets import codec, delivery, recovery
from tornado_websockets.broker import Envelope
from tornado_websockets.redis import replay
from tornado_websockets.redis.client import CONNECTION_ERRORS
from tornado_websockets.redis.common import raise_if_cancelling
from tornado_websockets.redis.replay import SharedReplay

if TYPE_CHECKING:
    from tornado_websockets.redis.channels import Channels
    from tornado_websockets.types import BrokerHost

__all__ = ["ReplayOwner", "SharedRecovery", "emit_arguments", "stored_envelope"]

# The name the docs give (docs/scaling.rst) and logging configurations use, from before the move.
logger = logging.getLogger("tornado_websockets.broker_redis")

#: An argument of a Redis script.
Encodable = str | bytes | int

#: What a read raises when Redis is lost, or when its marker does not come back in time.
_READ_ERRORS: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, TimeoutError)


class ReplayOwner(Protocol):
    """What shared recovery needs of the broker it sits beside."""

    channel: str
    channels: Channels
    timeout: float
    FILL_LIMIT: int
    WAITING_LIMIT: int

    @property
    def host(self) -> BrokerHost | None:
        """The server the broker serves, once started."""
        ...

    @property
    def state(self) -> str:
        """The broker's state, for errors."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the broker is subscribed now."""
        ...

    @property
    def publishing(self) -> bool:
        """Whether the broker publishes now: subscribed, or subscribing again on a live connection."""
        ...

    @property
    def stopped(self) -> bool:
        """Whether the broker was stopped."""
        ...

    def hand_over(self, envelope: Envelope) -> None:
        """Deliver an envelope to this process's clients."""
        ...

    def deliver_unnumbered(self, envelopes: list[Envelope]) -> None:
        """Give this process's clients the numbered envelopes Redis will not number now."""
        ...


def emit_arguments(
    channels: Channels, channel: str, envelope: Envelope, bounds: str
) -> tuple[list[str], list[Encodable]]:
    """The keys and arguments of `~tornado_websockets.redis.replay.EMIT_SCRIPT` for ``envelope``;
    ``bounds`` are the path's (``""`` from a process that does not serve it)."""
    keys = channels.keys(channel, envelope.path)
    stream = envelope.stream
    return (
        [keys.conf, keys.seq(stream), keys.frames(stream), keys.base(stream)],
        [
            channels.channel_for(channel, envelope.path, stream),
            envelope.header(),
            envelope.frame,
            envelope.path,
            codec.dumps(stream),
            replay.HISTORY_SECONDS * 1000,
            bounds,
            channels.publish_command,
        ],
    )


def stored_envelope(path: str, stream: str, seq: int, fields: dict[bytes, bytes]) -> Envelope:
    """The envelope of a frame read back from a recovery stream."""
    frame, header = fields.get(b"f", b""), fields.get(b"h")
    if header is not None:
        with contextlib.suppress(ValueError, TypeError):
            return Envelope.unpack(header + b"\n" + frame)
    room = None if stream == recovery.BROADCAST_STREAM else stream
    return Envelope(path, frame, room, seq=seq)


class SharedRecovery:
    """Frames numbered and kept by Redis for every process (see `tornado_websockets.redis.replay`)."""

    def __init__(self, owner: ReplayOwner) -> None:
        self.owner = owner
        self._client: redis.asyncio.Redis | None = None  # while connected
        self._read_script: AsyncScript | None = None  # READ_SCRIPT, registered with the connected client
        #: Reads waiting for their marker to come back on the channel.
        self._markers: dict[str, asyncio.Future[None]] = {}
        #: The last number delivered here of each numbered stream with members here: (path, stream) -> seq.
        self._delivered: dict[tuple[str, str], int] = {}
        #: The base of that number, its epoch (see `tornado_websockets.redis.replay`), when known:
        #: a frame of another base is of a new numbering, never compared with the old position.
        self._bases: dict[tuple[str, str], int] = {}
        #: Connections whose catch-up waits for the backplane to connect. Weak: a connection that
        #: closes meanwhile leaves it by itself, nothing of it kept.
        self._waiting: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def ready(self) -> bool:
        """Whether Redis can number frames now (and be read, once subscribed: `replay_since`
        raises until then, and the connection waits in `call_when_ready`)."""
        return self._client is not None and self.owner.publishing

    def bounds(self, path: str) -> str:
        """The recovery bounds this server gives ``path`` (``""`` if it does not recover here)."""
        host = self.owner.host
        websocket = None if host is None else host.websocket_for(path)
        if websocket is None or websocket.replay is None:
            return ""
        return replay.conf_value(websocket.replay.seconds, websocket.replay.size)

    def emit_arguments(self, envelope: Envelope) -> tuple[list[str], list[Encodable]]:
        """`emit_arguments` with this server's bounds when it numbers its own frame."""
        bounds = self.bounds(envelope.path) if envelope.numbered else ""
        return emit_arguments(self.owner.channels, self.owner.channel, envelope, bounds)

    async def connected(self, client: redis.asyncio.Redis) -> None:
        """The broker subscribed with ``client``: declare the paths, fill what was missed."""
        # Ready for reads at once: a connection may join a room as soon as the subscription is
        # confirmed, and its catch-up needs both.
        self._read_script = client.register_script(replay.READ_SCRIPT)
        self._client = client
        try:
            await self._declare(client)
            await self._fill_all(client)
        except BaseException:
            self._client = None
            raise

    def disconnected(self) -> None:
        """The broker lost its connection."""
        self._client = None

    async def _declare(self, client: redis.asyncio.Redis) -> None:
        """Tell Redis which paths recover, so that frames from an Emitter are numbered too."""
        host = self.owner.host
        if host is None:
            return
        for path, websocket in list(host.websockets.items()):
            if websocket.replay is not None:
                bounds = replay.conf_value(websocket.replay.seconds, websocket.replay.size)
                try:
                    await client.hset(self.owner.channels.keys(self.owner.channel, path).conf, path, bounds)
                except redis.exceptions.OutOfMemoryError as error:
                    # Refused (maxmemory with noeviction), not lost: the connection serves on. This
                    # server's own emits carry their bounds; an Emitter's are numbered once declared.
                    # (A cluster still forming answers CLUSTERDOWN: that one is a reconnection.)
                    logger.warning("Redis refused to declare the recovery of %r (%s)", path, error)

    # Reads of a joining connection ---------------------------------------------------------------

    async def replay_since(self, path: str, stream: str, seen: int | None, seconds: float) -> SharedReplay:
        """The last number of ``stream`` and its kept frames after ``seen`` (None: none wanted).

        Returns once every frame numbered before the read has reached this process.

        :raise ConnectionError: Redis cannot be reached, or the read's marker did not come back
            within the broker's timeout.
        """
        if not self.owner.connected:
            raise ConnectionError(f"the Redis backplane is {self.owner.state}")
        channels, channel = self.owner.channels, self.owner.channel
        await channels.before_read(channels.channel_for(channel, path, stream))
        read = self._read_script
        if self._client is None or read is None or not self.owner.connected:
            raise ConnectionError("the Redis backplane is not connected")
        keys = channels.keys(channel, path)
        token = uuid.uuid4().hex
        arrived = self._markers[token] = asyncio.get_running_loop().create_future()
        try:
            reply = await read(
                [keys.seq(stream), keys.frames(stream), keys.epoch, keys.base(stream)],
                [
                    "" if seen is None else f"0-{seen + 1}",
                    seconds,
                    channels.channel_for(channel, path, stream),
                    replay.marker(token),
                    replay.new_epoch(),
                    replay.HISTORY_SECONDS * 1000,
                    channels.publish_command,
                ],
            )
            await asyncio.wait_for(arrived, self.owner.timeout)
        except _READ_ERRORS as error:
            raise ConnectionError(f"shared recovery could not be read ({error!r})") from error
        finally:
            self._markers.pop(token, None)
        return SharedReplay.parse(reply)

    async def spend(self, path: str, grant: str, seconds: float) -> bool:
        """Use ``grant`` to recover, atomically for every process: True the first time, False once
        spent or revoked (Redis remembers it ``seconds``).

        :raise ConnectionError: Redis cannot be reached.
        """
        return await self._mark_grant(path, grant, seconds, only_new=True)

    async def revoke(self, path: str, grant: str, seconds: float) -> None:
        """A connection left its stream: the tokens of its ``grant`` recover nothing any more.

        :raise ConnectionError: Redis cannot be reached.
        """
        await self._mark_grant(path, grant, seconds, only_new=False)

    async def _mark_grant(self, path: str, grant: str, seconds: float, only_new: bool) -> bool:
        client = self._client
        if client is None or not self.owner.connected:
            raise ConnectionError(f"the Redis backplane is {self.owner.state}")
        key = self.owner.channels.keys(self.owner.channel, path).grant(grant)
        try:
            done = await client.set(key, b"1", px=max(1, round(seconds * 1000)), nx=only_new)
        except _READ_ERRORS as error:  # a refusal too (maxmemory): the grant is not spent, resync
            raise ConnectionError(f"a recovery grant could not be written ({error!r})") from error
        return bool(done)

    def marker_arrived(self, data: bytes) -> None:
        """A read's marker came back: every frame numbered before the read has been delivered."""
        try:
            token = codec.loads(data)["m"]
        except (ValueError, TypeError, KeyError):
            return
        arrived = self._markers.get(token) if isinstance(token, str) else None
        if arrived is not None and not arrived.done():
            arrived.set_result(None)

    def call_when_ready(self, socket: Any) -> bool:
        """Call ``socket.backplane_ready()`` once Redis is connected again (or for the first time).

        A connection that joins a stream while Redis connects or is unreachable waits so for its
        position (at most ``WAITING_LIMIT`` connections wait; one that closes meanwhile is dropped).
        """
        if (self._client is not None and self.owner.connected) or self.owner.stopped:
            return False
        if socket not in self._waiting and len(self._waiting) >= self.owner.WAITING_LIMIT:
            logger.warning(
                "%d connections already wait for the Redis backplane: %r gets no position",
                len(self._waiting),
                socket,
            )
            return False
        self._waiting.add(socket)
        return True

    def wake_waiting(self) -> None:
        """Redis is connected: the connections that waited for it run their catch-up now."""
        waiting = list(self._waiting)
        self._waiting.clear()
        if waiting:
            logger.info("%d connections get their position now that the Redis backplane is up", len(waiting))
        for socket in waiting:
            try:
                socket.backplane_ready()
            except Exception:
                logger.exception("Resuming the catch-up of %r failed", socket)

    async def publish_unnumbered(
        self, client: redis.asyncio.Redis, refused: list[Envelope], results: list[Any]
    ) -> None:
        """Publish without numbers what Redis refused to number; its clients cannot replay these."""
        error = next(result for result in results if isinstance(result, redis.ResponseError))
        logger.warning(
            "Redis refused %d emits (%s): published without numbers, so without recovery", len(refused), error
        )
        unnumbered = [dataclasses.replace(envelope, numbered=False) for envelope in refused]
        self.owner.deliver_unnumbered(refused)
        channels, channel = self.owner.channels, self.owner.channel
        async with client.pipeline(transaction=False) as pipe:
            for envelope in unnumbered:
                name = channels.channel_for(channel, envelope.path, envelope.stream)
                pipe.execute_command(channels.publish_command, name, envelope.pack())
            outcomes = await pipe.execute(raise_on_error=False)
        raise_if_cancelling()
        for envelope, outcome in zip(unnumbered, outcomes, strict=True):
            if isinstance(outcome, redis.ResponseError):
                delivery.record_drop(delivery.BACKPLANE_UNREACHABLE, envelope.path)

    # Numbered frames as they arrive --------------------------------------------------------------

    async def arrived(self, client: redis.asyncio.Redis, envelope: Envelope) -> bool:
        """A numbered frame came: deliver first what this process missed before it. False when it
        was delivered already (by a fill)."""
        assert envelope.seq is not None
        key = (envelope.path, envelope.stream)
        last = self._delivered.get(key)
        base = self._bases.get(key)
        if last is not None and None not in (base, envelope.base) and envelope.base != base:
            # Redis numbers the stream anew (it lost its data): the old position says nothing of
            # these numbers, lower or higher. Its members resync, and get what the new one keeps.
            assert envelope.base is not None
            await self._fill(client, key, envelope.base, envelope.seq - 1, new_epoch=True)
        elif last is not None and envelope.seq <= last:
            return False
        elif last is not None and envelope.seq > last + 1:
            same = base is not None and envelope.base == base
            await self._fill(client, key, last, envelope.seq - 1, same_epoch=same)
        self._track(key, envelope.seq, envelope.base if envelope.base is not None else base)
        return True

    def published_unheard(self, path: str, stream: str, seq: int) -> None:
        """This process published frame ``seq`` while it was not subscribed: make sure the read-back
        after subscribing delivers it to the members here, even if no frame of theirs came before."""
        key = (path, stream)
        if key not in self._delivered and self._has_members(path, stream):
            self._delivered[key] = seq - 1
            self._bases.pop(key, None)

    def skipped(self, path: str, stream: str, before: int, after: int) -> None:
        """This process dropped the frames numbered ``before + 1`` to ``after`` (see
        `tornado_websockets.redis.gaps`): its members had them without a number, so they are told
        their new position rather than a gap. Had other frames come since, the next one's fill
        sends them ``resync`` instead."""
        key = (path, stream)
        if self._delivered.get(key) != before:
            return
        self._delivered[key] = after
        for handler in self._members(path, stream):
            # Ahead of a frame of theirs waiting for its number: it comes after the skipped ones.
            with handler.outbox.ahead_of_order():
                handler.catchup.write_position(stream, after)

    def _track(self, key: tuple[str, str], seq: int, base: int | None) -> None:
        """Remember the last number delivered of a stream, and its base (None: unknown), while this
        process has members in it."""
        if self._has_members(*key):
            self._delivered[key] = seq
            if base is None:
                self._bases.pop(key, None)
            else:
                self._bases[key] = base
        else:
            self._delivered.pop(key, None)
            self._bases.pop(key, None)

    def _members(self, path: str, stream: str) -> tuple[Any, ...]:
        host = self.owner.host
        websocket = None if host is None else host.websocket_for(path)
        if websocket is None or websocket.replay is None:
            return ()
        if stream == recovery.BROADCAST_STREAM:
            return tuple(websocket.handlers)
        return tuple(websocket.rooms.members(stream))

    def has_members(self, path: str, stream: str) -> bool:
        """Whether this process has members in ``stream`` of ``path`` (a recovering one)."""
        return self._has_members(path, stream)

    def _has_members(self, path: str, stream: str) -> bool:
        host = self.owner.host
        websocket = None if host is None else host.websocket_for(path)
        if websocket is None or websocket.replay is None:
            return False
        return bool(websocket.handlers) if stream == recovery.BROADCAST_STREAM else stream in websocket.rooms

    async def _fill_all(self, client: redis.asyncio.Redis) -> None:
        """After subscribing again: deliver what each stream with members here got meanwhile."""
        for key, last in list(self._delivered.items()):
            if not self._has_members(*key):
                del self._delivered[key]
                self._bases.pop(key, None)
                continue
            keys = self.owner.channels.keys(self.owner.channel, key[0])
            current = await client.get(keys.seq(key[1]))
            base = await client.get(keys.base(key[1]))
            raise_if_cancelling()
            known = self._bases.get(key)
            if current is None:  # Redis lost the stream (restarted, flushed): nothing to read back
                await self._resync(client, key, None)
            elif base is not None and (int(current) < last or known not in (None, int(base))):
                # Numbered anew meanwhile (Redis lost its data; numbers never go down in one
                # numbering): what the new numbering keeps.
                await self._fill(client, key, int(base), int(current), new_epoch=True)
            elif int(current) > last:
                await self._fill(client, key, last, int(current), same_epoch=known is not None)

    async def _fill(
        self,
        client: redis.asyncio.Redis,
        key: tuple[str, str],
        last: int,
        upto: int,
        *,
        same_epoch: bool = False,
        new_epoch: bool = False,
    ) -> None:
        """Deliver the frames numbered after ``last`` up to ``upto``, read back from Redis; they
        were published while this process was not subscribed. Those Redis no longer keeps are
        lost to the members here: they get ``resync`` and the position before the first frame
        still kept, then the kept ones; the frames lost are counted. Frames kept below a hole
        (``same_epoch``) are delivered first, before the ``resync``.

        ``same_epoch``: ``last`` is known to be of the numbering of ``upto``, so the numbers in
        between were all given. ``new_epoch``: ``last`` is the base of a new numbering (Redis lost
        its data): the members resync even when every frame of it is still kept.
        """
        path, stream = key
        wanted = upto - last
        limit = self.owner.FILL_LIMIT
        keys = self.owner.channels.keys(self.owner.channel, path)
        entries: list[Any] = []
        if wanted > 0:
            # The newest ones, at most FILL_LIMIT: a stream keeps its last frames, not its first.
            reply = await client.xrevrange(
                keys.frames(stream), f"0-{upto}", f"0-{last + 1}", count=min(wanted, limit)
            )
            raise_if_cancelling()
            entries = list(reply or [])
        numbers = [replay.entry_number(entry_id) for entry_id, _ in entries]
        # The newest frames, down to the first number missing, then (of the same numbering) the
        # oldest, up to the first number missing: a hole in the middle (numbers another process
        # took for frames it could not publish, see gaps.py) costs its members those frames only.
        tail = _run(numbers, upto, -1)
        kept = list(reversed(entries[:tail]))
        head: list[Any] = []
        if same_epoch and not new_epoch:
            older = list(reversed(entries[tail:]))
            head = older[: _run(list(reversed(numbers[tail:])), last + 1, 1)]
        if head:
            self._hand_over_all(path, stream, head)
            last += len(head)
        first = upto + 1 - len(kept)  # the first frame delivered from Redis after the hole
        if new_epoch or first > last + 1:
            lost = first - 1 - last
            if not (new_epoch or same_epoch) and lost > limit:
                # Numbers far apart of no known epoch (frames of a version that sent none): Redis
                # may have numbered anew, so how many were lost is unknown; one at least.
                lost = 1
            await self._resync(client, key, first - 1, lost)
        if kept:
            logger.info(
                "Read back %d frames of %r on %s published while resubscribing", len(kept), stream, path
            )
        envelopes = self._hand_over_all(path, stream, kept)
        self._track(key, upto, envelopes[-1].base if envelopes else self._bases.get(key))

    def _hand_over_all(self, path: str, stream: str, entries: list[Any]) -> list[Envelope]:
        """Deliver frames read back from a recovery stream, oldest first; returns their envelopes."""
        envelopes = [
            stored_envelope(path, stream, replay.entry_number(entry_id), fields)
            for entry_id, fields in entries
        ]
        for envelope in envelopes:
            self.owner.hand_over(envelope)
        return envelopes

    async def _resync(
        self, client: redis.asyncio.Redis, key: tuple[str, str], upto: int | None, lost: int = 0
    ) -> None:
        """Tell the members here of a stream that its frames up to ``upto`` (None: its last) are
        lost to them: ``resync``, then their new position. ``lost`` frames are counted."""
        path, stream = key
        channels, channel = self.owner.channels, self.owner.channel
        keys = channels.keys(channel, path)
        assert self._read_script is not None  # registered when connected, before any fill
        arguments: list[Encodable] = [
            "",
            0,
            channels.channel_for(channel, path, stream),
            "",
            replay.new_epoch(),
            replay.HISTORY_SECONDS * 1000,
            channels.publish_command,
        ]
        reply = await self._read_script(
            [keys.seq(stream), keys.frames(stream), keys.epoch, keys.base(stream)], arguments, client=client
        )
        base = await client.get(keys.base(stream))
        raise_if_cancelling()
        shared = SharedReplay.parse(reply)
        position = shared.last if upto is None else upto
        if lost:
            delivery.record_drop(delivery.BACKPLANE_MISSED, path, lost)
        logger.warning(
            "Frames of %r on %s published while this process resubscribed are no longer kept: "
            "its members here are sent resync",
            stream,
            path,
        )
        for handler in self._members(path, stream):
            handler.catchup.write_resync(stream, position, shared.epoch, shared.secret)
        self._track(key, position, None if base is None else int(base))


def _run(numbers: list[int], start: int, step: int) -> int:
    """How many of ``numbers`` follow one another from ``start``, by ``step``."""
    return next(
        (count for count, number in enumerate(numbers) if number != start + count * step), len(numbers)
    )
