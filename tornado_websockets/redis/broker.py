"""The Redis backplane: one PUBLISH per emit, to which every server process subscribes.

::

    TornadoWrapper.use_broker("redis://127.0.0.1:6379/0?channel=myapp")

A process delivers an emit to its own clients first, then `RedisBroker.publish` puts the envelope
in a bounded queue that one task drains, in order, pipelining whatever has piled up; the loop never
waits for Redis. Every process's subscriber hands the envelopes of the others to the server,
skipping its own.

The broker composes its parts: where frames travel (`~tornado_websockets.redis.channels`, one
channel or sharded ones), shared recovery (`~tornado_websockets.redis.recovery`: paths declared
with ``recover=`` are numbered by Redis, so that any process can replay what a client missed),
shared presence and metrics (`~tornado_websockets.redis.presence`), and publishing from threads
(`~tornado_websockets.redis.publisher`).

Delivery across processes is at most once. While Redis cannot be reached, local delivery goes on,
frames meant for other processes are dropped and counted as
`~tornado_websockets.delivery.BACKPLANE_UNREACHABLE`, and the broker reconnects with exponential
backoff and jitter; frames published while a process was disconnected never reach that process.
On recovering paths that loss is never silent: the dropped frames' numbers are taken once Redis
is back (`~tornado_websockets.redis.gaps`), so every reader elsewhere sees a gap and gets
``resync``. When only the subscription is lost (``CLIENT KILL TYPE pubsub``, an output-buffer
limit, a shard's failover), the broker goes on publishing on its command connection while it
subscribes again, then reads back what it missed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from tornado_websockets import delivery, recovery
from tornado_websockets.broker import Broker, Deliver, Envelope
from tornado_websockets.presence import Member
from tornado_websockets.redis import replay
from tornado_websockets.redis.channels import Channels, SingleChannel, Subscription
from tornado_websockets.redis.client import CONNECTION_ERRORS, is_lost, until_one_fails
from tornado_websockets.redis.common import backoff_delay, raise_if_cancelling, redacted, split_url
from tornado_websockets.redis.gaps import Skipped
from tornado_websockets.redis.presence import SharedPresence
from tornado_websockets.redis.publisher import SyncPublisher
from tornado_websockets.redis.recovery import SharedRecovery

if TYPE_CHECKING:
    from tornado_websockets.types import BrokerHost

__all__ = [
    "CONNECTED",
    "CONNECTING",
    "DEFAULT_CHANNEL",
    "IDLE",
    "RESUBSCRIBING",
    "STOPPED",
    "UNREACHABLE",
    "RedisBroker",
]

# The name the docs give (docs/scaling.rst) and logging configurations use, from before the move.
logger = logging.getLogger("tornado_websockets.broker_redis")

#: The channel emits travel on, unless the URL's ``?channel=`` or the ``channel`` argument says otherwise.
DEFAULT_CHANNEL = "tornado_websockets"

# The broker's `state`, as metrics report it.
#: Created, not started: emits wait in the queue.
IDLE = "idle"
#: Started, first connection under way: emits wait in the queue.
CONNECTING = "connecting"
#: Subscribed: emits are published, the others' are received.
CONNECTED = "connected"
#: The subscription was lost, the command connection was not: emits are published, the
#: subscription is made again (then what was missed is read back).
RESUBSCRIBING = "resubscribing"
#: Redis was lost; reconnecting. Emits for other processes are dropped and counted.
UNREACHABLE = "unreachable"
#: Stopped by `RedisBroker.stop`.
STOPPED = "stopped"


class RedisBroker(Broker):
    """A backplane through Redis pub/sub, for several server processes (on one machine or many).

    :param url: ``redis://[:password@]host:port/db``, ``rediss://`` for TLS or ``unix:///path``;
        ``?channel=name`` sets the channel. Pub/sub ignores the database number: applications
        that share a Redis server need different channels.
    :param channel: the channel, overriding the URL's.
    :param queue_size: emits waiting to be published, at most; more are dropped and counted.
    :param batch_size: emits sent in one pipeline, at most.
    :param retry_base: seconds before the first reconnection attempt; doubled at each failure...
    :param retry_cap: ...up to this many seconds.
    :param keepalive: seconds of silence on the subscription after which Redis is sent a PING;
        with no answer within as long again, the connection counts as lost.
    :param timeout: seconds allowed to connect and for each command.
    :param presence_ttl: seconds after which the members (and the metrics) of a process that
        stopped refreshing them (killed, frozen, cut off) disappear; refreshed every third of it.
    :param presence: share this process's members and metrics with the others (see
        `tornado_websockets.redis.presence`): one Redis write per connection opening, closing,
        joining or leaving a room, on a connection of its own. False: presence and metrics of
        this process only, ``joined`` / ``left`` decided per process.
    :param channels: where frames travel: `~tornado_websockets.redis.channels.SingleChannel`
        (the default) or `~tornado_websockets.redis.cluster.ShardedChannels` (Redis Cluster).
    """

    cross_process = True
    #: Frames read back at most after resubscribing; a longer gap is a ``resync``.
    FILL_LIMIT = 10_000
    #: Connections waiting at most for the backplane to connect to get their catch-up (see
    #: `call_when_replay_ready`); more get ``resync`` (if they asked to recover) and no position.
    WAITING_LIMIT = 100_000
    #: Attempts to subscribe again on the same command connection before reconnecting altogether.
    RESUBSCRIBE_ATTEMPTS = 3

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        channel: str | None = None,
        *,
        queue_size: int = 10_000,
        batch_size: int = 256,
        retry_base: float = 0.1,
        retry_cap: float = 10.0,
        keepalive: float = 15.0,
        timeout: float = 5.0,
        presence_ttl: float = 15.0,
        presence: bool = True,
        channels: Channels | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("queue_size", queue_size), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} should be a positive int, not {value!r}.")
        numbers = (
            ("retry_base", retry_base),
            ("retry_cap", retry_cap),
            ("keepalive", keepalive),
            ("timeout", timeout),
            ("presence_ttl", presence_ttl),
        )
        for name, number in numbers:
            if not number > 0:
                raise ValueError(f"{name} should be a positive number of seconds, not {number!r}.")
        self.url, url_channel = split_url(url)
        self.channel = channel or url_channel or DEFAULT_CHANNEL
        self.channels: Channels = channels or SingleChannel()
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.keepalive = keepalive
        self.timeout = timeout
        self.presence_ttl = presence_ttl
        #: Shared recovery, beside the delivery (the broker's `replay` capability).
        self.recovery = SharedRecovery(self)
        self.replay = self.recovery
        #: Share members and metrics with the other processes (`presence_store`, once started).
        self.share_presence = presence
        #: One of `IDLE`, `CONNECTING`, `CONNECTED`, `RESUBSCRIBING`, `UNREACHABLE`, `STOPPED`.
        self.state = IDLE
        #: Connections (or subscriptions alone) made again after Redis was lost.
        self.reconnects = 0
        #: Numbered frames dropped, whose numbers are taken once Redis is back (see `gaps`).
        self.skipped = Skipped(lambda path: bool(self.recovery.bounds(path)))
        # A deque rather than an asyncio.Queue: it belongs to no loop, so the broker can be
        # stopped and started again on another loop (as tests do), keeping what waits in it.
        self._pending: collections.deque[Envelope] = collections.deque()
        self._sending: list[Envelope] = []
        self._wakeup: asyncio.Event | None = None  # set when there is something to send
        self._idle: asyncio.Event | None = None  # set while nothing waits to be sent
        self._task: asyncio.Task[None] | None = None
        self._publisher: SyncPublisher | None = None
        self._subscription: Subscription | None = None  # the current one, while connected
        # Frames of recovering paths that were in flight when the connection went, delivered
        # here without a number: Redis may have numbered them all the same, and this process
        # must not deliver them again when it reads them back. (path, stream) -> frames less "}".
        self._in_flight: dict[tuple[str, str], list[bytes]] = {}
        # This process's numbered frames Redis numbered (its reply came) whose copy on the
        # subscription has not come back yet, oldest first: at the loss of the connection that copy
        # may never come (the node died before sending it, or its reader was cancelled with it
        # unread), so they are delivered here then, ahead of the frames still queued. Bounded: a
        # frame of a stream this process does not hear is not kept.
        self._unheard: collections.deque[Envelope] = collections.deque(maxlen=self.FILL_LIMIT)
        # Those of them delivered here at the loss, as in _in_flight, but numbered: no number to take.
        self._numbered_in_flight: dict[tuple[str, str], list[bytes]] = {}

    def __repr__(self) -> str:
        kind = type(self).__qualname__
        return f"<{kind} {self.id[:8]} {redacted(self.url)} channel={self.channel!r} {self.state}>"

    @property
    def connected(self) -> bool:
        """Whether the broker is subscribed now."""
        return self.state == CONNECTED

    @property
    def publishing(self) -> bool:
        """Whether emits are published now: subscribed, or subscribing again (`RESUBSCRIBING`)."""
        return self.state in {CONNECTED, RESUBSCRIBING}

    @property
    def stopped(self) -> bool:
        """Whether `stop` was called (and `start` not since)."""
        return self.state == STOPPED

    @property
    def sharing(self) -> SharedPresence | None:
        """Members and metrics shared with the other processes, beside the backplane (see
        `tornado_websockets.redis.presence`); None unless ``presence`` and started, or queried."""
        store = self.presence_store
        return store if isinstance(store, SharedPresence) else None

    # Loop side -----------------------------------------------------------------------------------

    async def start(self, host: BrokerHost | Deliver) -> None:
        """Connect and subscribe in the background; never raises because Redis is down."""
        await super().start(host)
        if self._task is not None and not self._task.done():
            return
        self.state = CONNECTING
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        if self.share_presence:
            self._sharing().start(self.host)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self!r} connection")

    def publish(self, envelope: Envelope) -> None:
        """Queue an envelope for the other processes; returns at once (call on the loop).

        A ``numbered`` one (shared recovery) reaches this process's clients through Redis too;
        if it cannot be queued they get it at once, without a number.
        """
        if self.state in {UNREACHABLE, STOPPED} or len(self._pending) >= self.queue_size:
            self.deliver_unnumbered([envelope])
            self.skipped.add([envelope])
            delivery.record_drop(delivery.BACKPLANE_UNREACHABLE, envelope.path)
            return
        self._pending.append(envelope)
        if self._wakeup is not None and self._idle is not None:
            self._idle.clear()
            self._wakeup.set()

    async def stop(self, flush: float = 1.0) -> None:
        """Publish what is queued (for up to ``flush`` seconds), then close every connection."""
        if self.sharing is not None:  # leave presence at once (its last left too), not after the TTL
            await self.sharing.stop()
        task, self._task = self._task, None
        if task is not None and not task.done():
            if self.state == CONNECTED and self._idle is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), flush)
            task.cancel()
            # Not `await task`: its CancelledError could not be told from a cancellation of stop()
            # itself, which must propagate. Bounded, so that a shutdown never hangs on Redis.
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
            if not done:
                logger.warning(
                    "Redis backplane %s did not stop within %.1fs", redacted(self.url), self.timeout
                )
        self.state = STOPPED
        self._drop_unsent()
        self.close_sync()
        await super().stop()

    async def _run(self) -> None:
        """Connect, subscribe, publish and receive; after any failure, wait and start over."""
        loop = asyncio.get_running_loop()
        attempt = 0
        lost_at: float | None = None
        while True:
            client = self.channels.client(self.url, self.timeout)
            subscription = self.channels.subscription(client, self.channel, self.timeout, self.keepalive)
            self._subscription = subscription
            try:
                await subscription.open()
                if lost_at is not None:
                    self.reconnects += 1
                    logger.warning(
                        "Redis backplane %s reached again after %.1fs",
                        redacted(self.url),
                        loop.time() - lost_at,
                    )
                elif attempt:
                    logger.warning("Redis backplane %s reached", redacted(self.url))
                attempt, lost_at = 0, None
                self.state = CONNECTED
                await self._serve(client, subscription)
            except CONNECTION_ERRORS as error:
                if self.state in {CONNECTED, RESUBSCRIBING}:
                    lost_at = loop.time()
                    logger.warning(
                        "Redis backplane %s lost (%s): local delivery goes on, emits to other processes "
                        "are dropped until it is back",
                        redacted(self.url),
                        error or type(error).__name__,
                    )
                elif attempt == 0:
                    logger.warning("Redis backplane %s unreachable (%s)", redacted(self.url), error)
            except Exception:
                # A bug must not end cross-process delivery for good: log it and start over.
                logger.exception("Redis backplane %s failed", redacted(self.url))
            finally:
                self._connection_lost()
                current, self._subscription = self._subscription, None
                if current is not None:
                    await current.close()
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await client.aclose()
            self.state = UNREACHABLE
            self._drop_unsent()
            delay = backoff_delay(attempt, self.retry_base, self.retry_cap)
            attempt += 1
            logger.info("Reconnecting to Redis backplane in %.2fs (attempt %d)", delay, attempt)
            await asyncio.sleep(delay)

    async def _serve(self, client: redis.asyncio.Redis, subscription: Subscription) -> None:
        """Publish and receive side by side until publishing fails; raises what it failed with.

        A subscription lost alone is made again while publishing goes on (`RESUBSCRIBING`).
        """
        emit = client.register_script(replay.EMIT_SCRIPT)
        if self.channels.cluster:  # loaded on every primary: the cluster pipeline sends EVALSHA
            await client.script_load(replay.EMIT_SCRIPT)
        # A partial, not a closure: one coroutine per message, as before the strategies.
        on_message = functools.partial(self._on_message, client)
        sender: asyncio.Future[None] | None = None
        try:
            while True:
                await self.recovery.connected(client)
                self._in_flight.clear()  # read back (and left out) by now, or never numbered
                self._numbered_in_flight.clear()
                await self.skipped.advance(client, self.channels, self.channel, self.recovery)
                # Publishing starts after the numbers of the frames dropped before were taken: a
                # frame numbered meanwhile would come before its process's members' new position.
                sender = sender or asyncio.ensure_future(self._send(client, emit))
                self.recovery.wake_waiting()
                listening = asyncio.ensure_future(until_one_fails(*subscription.receivers(on_message)))
                try:
                    await asyncio.wait({sender, listening}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not listening.done():
                        listening.cancel()
                    # Waited for, so that its error is retrieved whatever ends the wait.
                    await asyncio.gather(listening, return_exceptions=True)
                if sender.done():
                    sender.result()
                    raise redis.ConnectionError("the Redis backplane stopped publishing")
                error = listening.exception()
                if not isinstance(error, CONNECTION_ERRORS):
                    listening.result()  # a bug: the caller logs it and reconnects
                # Redis itself gone (the usual case): reconnect altogether, at once.
                await client.ping()
                raise_if_cancelling()
                self.state = RESUBSCRIBING
                logger.warning(
                    "Redis backplane %s: its subscription failed (%s); publishing goes on while it "
                    "subscribes again",
                    redacted(self.url),
                    error or type(error).__name__,
                )
                subscription = await self._resubscribe(client, sender)
                logger.warning("Redis backplane %s subscribed again", redacted(self.url))
                self.reconnects += 1
                self.state = CONNECTED
        finally:
            if sender is not None:
                sender.cancel()
            # Before the first await (see _connection_lost): the loop runs emits while it waits.
            self._connection_lost()
            if sender is not None:
                await asyncio.gather(sender, return_exceptions=True)

    async def _resubscribe(self, client: redis.asyncio.Redis, sender: asyncio.Future[None]) -> Subscription:
        """A new subscription on the same client, while ``sender`` publishes on; raises after
        `RESUBSCRIBE_ATTEMPTS` failures, or when publishing fails meanwhile."""
        attempt = 0
        while True:
            if self._subscription is not None:
                await self._subscription.close()
            await asyncio.wait({sender}, timeout=backoff_delay(attempt, self.retry_base, self.retry_cap))
            if sender.done():
                sender.result()
                raise redis.ConnectionError("the Redis backplane stopped publishing")
            subscription = self.channels.subscription(client, self.channel, self.timeout, self.keepalive)
            self._subscription = subscription
            try:
                await subscription.open()
                return subscription
            except CONNECTION_ERRORS:
                attempt += 1
                if attempt >= self.RESUBSCRIBE_ATTEMPTS:
                    raise

    async def _send(self, client: redis.asyncio.Redis, emit: AsyncScript) -> None:
        assert self._wakeup is not None  # both created by start()
        assert self._idle is not None
        while True:
            while not self._pending:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
            count = min(len(self._pending), self.batch_size)
            self._sending = [self._pending.popleft() for _ in range(count)]
            # Awaited from now on: the copy on the subscription may come before the reply does.
            self._unheard.extend(
                envelope
                for envelope in self._sending
                if envelope.numbered and self.recovery.has_members(envelope.path, envelope.stream)
            )
            async with client.pipeline(transaction=False) as pipe:
                for envelope in self._sending:
                    await self._queue(pipe, envelope, emit)
                # Errors of single commands come back as results: a script Redis refuses (at
                # maxmemory with noeviction, which PUBLISH alone passes) must not cost the rest.
                results = await pipe.execute(raise_on_error=False)
            raise_if_cancelling()
            lost = [
                envelope
                for envelope, result in zip(self._sending, results, strict=True)
                if is_lost(result) or isinstance(result, redis.ResponseError)
            ]
            if any(is_lost(result) for result in results):
                # A command whose connection (or node) died comes back as a result: not published.
                # _drop_unsent delivers them here, counts them and takes their numbers later.
                self._sending = lost
                failure = next(result for result in results if is_lost(result))
                raise redis.ConnectionError(f"{len(lost)} emits lost with their connection ({failure})")
            unknown = [
                envelope
                for envelope, result in zip(self._sending, results, strict=True)
                if isinstance(result, redis.exceptions.NoScriptError)
            ]
            if unknown and self.channels.cluster:
                # A replica promoted by a failover never loaded the script: load it on every
                # primary, and send these again first (one stream lives on one shard: its order holds).
                await client.script_load(replay.EMIT_SCRIPT)
                raise_if_cancelling()
                self._pending.extendleft(reversed(unknown))
                self._forget_unheard(unknown, [None] * len(unknown))
                pairs = [
                    (envelope, result)
                    for envelope, result in zip(self._sending, results, strict=True)
                    if not isinstance(result, redis.exceptions.NoScriptError)
                ]
                self._sending = [envelope for envelope, _ in pairs]
                results = [result for _, result in pairs]
            refused = [
                envelope
                for envelope, result in zip(self._sending, results, strict=True)
                if isinstance(result, redis.ResponseError)
            ]
            sent, self._sending = self._sending, []
            self._forget_unheard(sent, results)
            if self.state == RESUBSCRIBING:
                # Not subscribed: this process's own numbered frames come back by the read-back.
                for envelope, result in zip(sent, results, strict=True):
                    if envelope.numbered and isinstance(result, list) and result and int(result[0]):
                        self.recovery.published_unheard(envelope.path, envelope.stream, int(result[0]))
            if refused:
                await self.recovery.publish_unnumbered(client, refused, results)
            sharing = self.sharing
            if self.channels.counts_unheard and sharing is not None and sharing.healthy:
                # PUBLISH tells how many processes received each frame (numbered ones: see recovery).
                heard = [
                    (envelope.path, result)
                    for envelope, result in zip(sent, results, strict=True)
                    if not envelope.numbered and isinstance(result, int)
                ]
                await sharing.directory.count_unheard(client, heard)

    async def _queue(self, pipe: Pipeline, envelope: Envelope, emit: AsyncScript) -> None:
        """Add the publication of one envelope to a pipeline: numbered by the script, or not."""
        if not envelope.numbered:
            channel = self.channels.channel_for(self.channel, envelope.path, envelope.stream)
            pipe.execute_command(self.channels.publish_command, channel, envelope.pack())
            return
        keys, args = self.recovery.emit_arguments(envelope)
        if self.channels.cluster:  # routed by the cluster pipeline to the shard of the path
            pipe.execute_command("EVALSHA", emit.sha, len(keys), *keys, *args)
        else:
            await emit(keys, args, client=pipe)

    async def _on_message(self, client: redis.asyncio.Redis, data: bytes) -> None:
        """Deliver one message: a numbered frame after the frames before it that this process missed."""
        if isinstance(data, bytes) and data.startswith(replay.MARKER_PREFIX):
            self.recovery.marker_arrived(data)
            return
        try:
            envelope = Envelope.unpack(data)
        except (ValueError, TypeError, RecursionError):
            logger.warning("Ignoring a message on Redis channel %r that is not an envelope", self.channel)
            return
        # Ours came back: delivered here already, unless Redis numbered it (then nobody has yet).
        if (envelope.origin == self.id and envelope.seq is None) or self.deliver is None:
            return
        if envelope.seq is not None and not await self.recovery.arrived(client, envelope):
            return  # delivered already, by a fill
        self.hand_over(envelope)

    def hand_over(self, envelope: Envelope) -> None:
        """Deliver an envelope from Redis to this process's clients (on the loop)."""
        if self.deliver is None or self._delivered_already(envelope):
            return
        try:
            self.deliver(envelope)
        except Exception:
            logger.exception("Delivering an emit from another process to %r failed", envelope.path)

    def _delivered_already(self, envelope: Envelope) -> bool:
        """Whether a frame read back is one of this process's, delivered here when its connection went."""
        if envelope.origin != self.id:
            return False
        if self._unheard and envelope.seq is not None:
            self._heard(envelope)
        if self._numbered_in_flight and _take(self._numbered_in_flight, envelope):
            return True
        if not (self._in_flight and _take(self._in_flight, envelope)):
            return False
        # Counted among the frames whose numbers are to be taken (`_drop_unsent`): it has one.
        self.skipped.numbered_after_all(envelope.path, envelope.stream)
        return True

    def _forget_unheard(self, sent: list[Envelope], results: list[Any]) -> None:
        """Stop awaiting the frames of ``sent`` Redis did not number (``results``: its replies)."""
        unnumbered = {
            id(envelope)
            for envelope, result in zip(sent, results, strict=True)
            if not (isinstance(result, list) and result and int(result[0]))
        }
        if unnumbered and self._unheard:
            kept = [envelope for envelope in self._unheard if id(envelope) not in unnumbered]
            self._unheard.clear()
            self._unheard.extend(kept)

    def _heard(self, envelope: Envelope) -> None:
        """This process's numbered frame came back: it is no longer awaited (see `_unheard`)."""
        for index, sent in enumerate(self._unheard):
            if envelope.frame.startswith(sent.frame[:-1]):
                del self._unheard[index]
                return

    def deliver_unnumbered(self, envelopes: list[Envelope]) -> None:
        """Give this process's clients the numbered envelopes Redis will not number now."""
        if self.deliver is None:
            return
        for envelope in envelopes:
            if envelope.numbered:
                # Still marked numbered (it carries no number): its clients' writes wait for it.
                self.deliver(envelope)

    def _connection_lost(self) -> None:
        """Stop numbering, and give this process's clients the numbered frames still queued, in
        one step, before anything else runs on the loop.

        From the moment Redis cannot number frames (`SharedRecovery.ready` False), a new emit is
        written to the local members at once; the numbered frames queued before it must reach them
        first. Left queued until the connections were closed (awaits, during which the loop runs
        emits), they came after it, behind whatever it was written after in the members' order.
        """
        self.recovery.disconnected()
        self._drop_unsent()

    def _drop_unsent(self) -> None:
        """Count what was queued or being sent when the connection went: it is not retried.

        The numbered ones had not reached this process's clients either: they get them now.
        """
        # Those still being sent have no number known here: they are unsent, below.
        sending = {id(envelope) for envelope in self._sending}
        unheard = [envelope for envelope in self._unheard if id(envelope) not in sending]
        self._unheard.clear()
        for envelope in unheard:
            self._numbered_in_flight.setdefault((envelope.path, envelope.stream), []).append(
                envelope.frame[:-1]
            )
        # Numbered by Redis before the frames still queued: its clients get them first.
        self.deliver_unnumbered(unheard)
        unsent = [*self._sending, *self._pending]
        for envelope in self._sending:
            if self.skipped.recovers(envelope.path):
                frames = self._in_flight.setdefault((envelope.path, envelope.stream), [])
                frames.append(envelope.frame[:-1])
        self._sending = []
        self._pending.clear()
        self.deliver_unnumbered(unsent)
        self.skipped.add(unsent)
        counts = collections.Counter(envelope.path for envelope in unsent)
        for path, count in counts.items():
            delivery.record_drop(delivery.BACKPLANE_UNREACHABLE, path, count)

    # Shared recovery: see tornado_websockets.redis.recovery -------------------------------------

    def _wake_waiting(self) -> None:
        self.recovery.wake_waiting()

    # Presence and metrics: see tornado_websockets.redis.presence ---------------------------------

    def membership_changed(self, socket: Any, room: str | None, present: bool) -> None:
        """Subscribe to a stream with its first local member, and leave it after its last (sharded
        channels); written to shared presence by `presence_changed`."""
        stream = recovery.BROADCAST_STREAM if room is None else room
        self.channels.membership_changed(self.channel, socket.websocket.path, stream, present)

    def presence_sync(self, path: str, room: str | None) -> tuple[Member, ...]:
        """The members of every live server process, from a process that runs no server."""
        return self._sharing().members_sync(path, room)

    def snapshots_sync(self) -> list[dict[str, Any]]:
        """The snapshots every live server process last shared (within ``presence_ttl``)."""
        return self._sharing().snapshots_sync()

    def _sharing(self) -> SharedPresence:
        sharing = self.sharing
        if sharing is None:  # in a process that runs no server: queries only
            sharing = SharedPresence(
                self.url, self.channel, self.id, self.presence_ttl, self.timeout, self.channels.cluster
            )
            self.presence_store = sharing
        return sharing

    # Thread side: see tornado_websockets.redis.publisher -----------------------------------------

    def publish_sync(self, envelope: Envelope) -> None:
        """Publish from a thread or a process that runs no server loop (a view, a worker)."""
        self.publish_blocking(envelope)

    def publish_blocking(self, envelope: Envelope) -> int:
        """Publish now, blocking; returns how many server processes received the envelope.

        When Redis cannot be reached the envelope is counted as dropped and 0 is returned.
        """
        publisher = self._publisher
        if publisher is None:
            publisher = self._publisher = SyncPublisher(
                self.url, self.channel, self.channels, self.timeout, self.recovery.bounds
            )
        return publisher.publish(envelope)

    def close_sync(self) -> None:
        """Close the connections `publish_sync` opened; it opens new ones if called again."""
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close()


def _take(frames_by_stream: dict[tuple[str, str], list[bytes]], envelope: Envelope) -> bool:
    """Remove the frame of ``envelope`` (less its number) from ``frames_by_stream``; whether it was there.

    Redis numbered the frame by appending its stream and number to the object: the frame kept is
    the start of the one read back.
    """
    frames = frames_by_stream.get((envelope.path, envelope.stream))
    match = next((frame for frame in frames or () if envelope.frame.startswith(frame)), None)
    if frames is None or match is None:
        return False
    frames.remove(match)
    return True
