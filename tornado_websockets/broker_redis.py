"""The Redis backplane: one PUBLISH per emit on one channel, to which every server process subscribes.

::

    TornadoWrapper.use_broker("redis://127.0.0.1:6379/0?channel=myapp")

A process delivers an emit to its own clients first, then `RedisBroker.publish` puts the envelope
in a bounded queue that one task drains, in order, pipelining whatever has piled up; the loop never
waits for Redis. Every process's subscriber hands the envelopes of the others to the server,
skipping its own.

Paths declared with ``recover=`` are numbered by Redis instead, so that any process can replay
what a client missed: see `tornado_websockets.recovery_redis`.

Delivery across processes is at most once. While Redis cannot be reached, local delivery goes on,
frames meant for other processes are dropped and counted as
`~tornado_websockets.delivery.BACKPLANE_UNREACHABLE`, and the broker reconnects with exponential
backoff and jitter; frames published while a process was disconnected never reach that process.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff

from tornado_websockets import codec, delivery, recovery, recovery_redis
from tornado_websockets.broker import Broker, Deliver, Envelope
from tornado_websockets.presence import Member
from tornado_websockets.presence_redis import SharedPresence
from tornado_websockets.recovery_redis import ReplayKeys, SharedReplay

__all__ = [
    "CONNECTED",
    "CONNECTING",
    "DEFAULT_CHANNEL",
    "IDLE",
    "STOPPED",
    "UNREACHABLE",
    "RedisBroker",
    "backoff_delay",
    "split_url",
]

logger = logging.getLogger(__name__)

#: The channel emits travel on, unless the URL's ``?channel=`` or the ``channel`` argument says otherwise.
DEFAULT_CHANNEL = "tornado_websockets"

# The broker's `state`, as metrics report it.
#: Created, not started: emits wait in the queue.
IDLE = "idle"
#: Started, first connection under way: emits wait in the queue.
CONNECTING = "connecting"
#: Subscribed: emits are published, the others' are received.
CONNECTED = "connected"
#: Redis was lost; reconnecting. Emits for other processes are dropped and counted.
UNREACHABLE = "unreachable"
#: Stopped by `RedisBroker.stop`.
STOPPED = "stopped"

#: Redis errors and socket errors (``asyncio``'s timeouts are ``OSError`` too).
_CONNECTION_ERRORS = (redis.RedisError, OSError)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before reconnection attempt ``attempt`` (0 for the first): ``base * 2**attempt``.

    Capped at ``cap``, with half of it random ("equal jitter"), so processes that lost Redis at
    the same moment do not all come back at the same instant.
    """
    delay = min(cap, base * 2.0 ** min(attempt, 32))
    return delay / 2 + random.uniform(0, delay / 2)


def _deliver_cancellation() -> None:
    """Raise `asyncio.CancelledError` if the running task was cancelled during an await that lost it.

    A redis-py command (seen with redis 8.1 on Python 3.11) may return normally although the task
    was cancelled while it ran. A loop going on after that would never end, and `RedisBroker.stop`,
    so the server's graceful shutdown, would wait for it forever; call this after each command.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def until_one_fails(*coroutines: Coroutine[Any, Any, Any]) -> None:
    """Run the coroutines side by side until one ends; then cancel the others and raise.

    The backplane's tasks never return normally: the one that ends raises what it failed with,
    or `redis.ConnectionError` if it returned.
    """
    tasks = {asyncio.ensure_future(coroutine) for coroutine in coroutines}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()
    raise redis.ConnectionError("the Redis backplane stopped")


async def close_pubsub(pubsub: PubSub) -> None:
    """Close ``pubsub``, ignoring a connection that is already broken."""
    # redis-py types PubSub.aclose from 8.x on, untyped before: through a typed name, both type-check.
    aclose: Callable[[], Awaitable[None]] = pubsub.aclose
    with contextlib.suppress(*_CONNECTION_ERRORS):
        await aclose()


def split_url(url: str) -> tuple[str, str | None]:
    """The Redis URL without this library's ``channel`` query parameter, and that parameter."""
    base, _, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    channel = next((value for name, value in pairs if name == "channel"), None)
    if channel is None:
        return url, None
    rest = urlencode([(name, value) for name, value in pairs if name != "channel"])
    return (f"{base}?{rest}" if rest else base), channel or None


def _redacted(url: str) -> str:
    """The URL with its password hidden, for logs and reprs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


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
        `tornado_websockets.presence_redis`): one Redis write per connection opening, closing,
        joining or leaving a room, on a connection of its own. False: presence and metrics of
        this process only, ``joined`` / ``left`` decided per process.
    """

    cross_process = True
    shares_replay = True
    #: Frames read back at most after resubscribing; a longer gap is a ``resync``.
    FILL_LIMIT = 10_000
    #: The command that publishes (``SPUBLISH`` on Redis Cluster).
    PUBLISH_COMMAND = "PUBLISH"
    #: Whether the URL names a node of a Redis Cluster.
    CLUSTER = False
    #: Connections waiting at most for the backplane to connect to get their catch-up (see
    #: `call_when_replay_ready`); more get ``resync`` (if they asked to recover) and no position.
    WAITING_LIMIT = 100_000

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
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.keepalive = keepalive
        self.timeout = timeout
        self.presence_ttl = presence_ttl
        self._client: redis.asyncio.Redis | None = None  # while connected
        #: Members and metrics shared with the other processes, beside the backplane (see
        #: `tornado_websockets.presence_redis`); None unless ``presence`` and started.
        self.sharing: SharedPresence | None = None
        self.share_presence = presence
        #: One of `IDLE`, `CONNECTING`, `CONNECTED`, `UNREACHABLE`, `STOPPED`.
        self.state = IDLE
        #: Connections made again after Redis was lost.
        self.reconnects = 0
        # A deque rather than an asyncio.Queue: it belongs to no loop, so the broker can be
        # stopped and started again on another loop (as tests do), keeping what waits in it.
        self._pending: collections.deque[Envelope] = collections.deque()
        self._sending: list[Envelope] = []
        self._wakeup: asyncio.Event | None = None  # set when there is something to send
        self._idle: asyncio.Event | None = None  # set while nothing waits to be sent
        self._task: asyncio.Task[None] | None = None
        self._heard = 0.0  # loop time of the last message from the subscription, PING answers included
        self._sync_client: redis.Redis | None = None
        self._sync_lock = threading.Lock()
        self._sync_failing = False
        self._emit_script: Any = None  # the sync client's registered EMIT_SCRIPT
        self._read_script: Any = None  # READ_SCRIPT, registered with the loop's client when it connects
        #: Reads of shared recovery waiting for their marker to come back on the channel.
        self._markers: dict[str, asyncio.Future[None]] = {}
        #: The last number delivered here of each numbered stream with members here: (path, stream) -> seq.
        self._delivered: dict[tuple[str, str], int] = {}
        #: Connections whose catch-up waits for the backplane to connect. Weak: a connection that
        #: closes meanwhile leaves it by itself, nothing of it kept.
        self._waiting: weakref.WeakSet[Any] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<RedisBroker {self.id[:8]} {_redacted(self.url)} channel={self.channel!r} {self.state}>"

    # Loop side -----------------------------------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Connect and subscribe in the background; never raises because Redis is down."""
        await super().start(deliver)
        if self._task is not None and not self._task.done():
            return
        self.state = CONNECTING
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        if self.share_presence:
            if self.sharing is None:
                self.sharing = SharedPresence(
                    self.url, self.channel, self.id, self.presence_ttl, self.timeout, self.CLUSTER
                )
            self.sharing.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self!r} connection")

    def publish(self, envelope: Envelope) -> None:
        """Queue an envelope for the other processes; returns at once (call on the loop).

        A ``numbered`` one (shared recovery) reaches this process's clients through Redis too;
        if it cannot be queued they get it at once, without a number.
        """
        if self.state in {UNREACHABLE, STOPPED} or len(self._pending) >= self.queue_size:
            self._deliver_unnumbered([envelope])
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
                    "Redis backplane %s did not stop within %.1fs", _redacted(self.url), self.timeout
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
            client = self._new_client()
            pubsub = self._new_pubsub(client)
            try:
                await self._subscribe(pubsub)
                if lost_at is not None:
                    self.reconnects += 1
                    logger.warning(
                        "Redis backplane %s reached again after %.1fs",
                        _redacted(self.url),
                        loop.time() - lost_at,
                    )
                elif attempt:
                    logger.warning("Redis backplane %s reached", _redacted(self.url))
                attempt, lost_at = 0, None
                self.state = CONNECTED
                await self._serve(client, pubsub)
            except _CONNECTION_ERRORS as error:
                if self.state == CONNECTED:
                    lost_at = loop.time()
                    logger.warning(
                        "Redis backplane %s lost (%s): local delivery goes on, emits to other processes "
                        "are dropped until it is back",
                        _redacted(self.url),
                        error or type(error).__name__,
                    )
                elif attempt == 0:
                    logger.warning("Redis backplane %s unreachable (%s)", _redacted(self.url), error)
            except Exception:
                # A bug must not end cross-process delivery for good: log it and start over.
                logger.exception("Redis backplane %s failed", _redacted(self.url))
            finally:
                await self._close(client, pubsub)
            self.state = UNREACHABLE
            self._drop_unsent()
            delay = backoff_delay(attempt, self.retry_base, self.retry_cap)
            attempt += 1
            logger.info("Reconnecting to Redis backplane in %.2fs (attempt %d)", delay, attempt)
            await asyncio.sleep(delay)

    #: The client class (`~tornado_websockets.broker_redis_cluster` uses redis-py's cluster client).
    _client_class: Any = redis.asyncio.Redis

    def _new_client(self) -> Any:
        return self._client_class.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            socket_keepalive=True,
            # No retries inside redis-py: this loop owns reconnection, backoff and logging.
            retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
        )

    def _new_pubsub(self, client: Any) -> Any:
        pubsub = client.pubsub()

        async def disconnect_only(connection: Any, *args: Any, **kwargs: Any) -> None:
            await connection.disconnect()

        # redis-py reconnects a failed pub/sub connection, subscribed again, before it raises the
        # error; until this loop closed it, that subscription nobody reads would take frames that
        # PUBLISH counts as received. This loop reconnects by itself, and reads back what it missed.
        pubsub._reconnect = disconnect_only
        return pubsub

    async def _subscribe(self, pubsub: PubSub) -> None:
        """Subscribe and wait for Redis to confirm: from then on, nothing published is missed."""
        await pubsub.subscribe(self.channel)
        _deliver_cancellation()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while (remaining := deadline - loop.time()) > 0:
            message = await pubsub.get_message(timeout=remaining)
            _deliver_cancellation()
            if message is not None and message["type"] == "subscribe":
                return
        raise redis.TimeoutError(f"Redis did not confirm the subscription within {self.timeout}s")

    async def _serve(self, client: redis.asyncio.Redis, pubsub: PubSub) -> None:
        """Publish and receive side by side until either fails; raises what it failed with."""
        # Ready for reads at once: a connection may join a room as soon as the subscription is
        # confirmed, and its catch-up needs both.
        self._read_script = client.register_script(recovery_redis.READ_SCRIPT)
        self._client = client
        try:
            await self._declare_recovery(client)
        except BaseException:
            self._client = None
            raise
        self._heard = asyncio.get_running_loop().time()
        self._wake_waiting()
        try:
            await until_one_fails(self._receive(pubsub, client), self._send(client), self._watch(pubsub))
        finally:
            self._client = None

    async def _send(self, client: redis.asyncio.Redis) -> None:
        assert self._wakeup is not None  # both created by start()
        assert self._idle is not None
        emit = client.register_script(recovery_redis.EMIT_SCRIPT)
        while True:
            while not self._pending:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
            count = min(len(self._pending), self.batch_size)
            self._sending = [self._pending.popleft() for _ in range(count)]
            async with client.pipeline(transaction=False) as pipe:
                for envelope in self._sending:
                    await self._queue(pipe, envelope, emit)
                # Errors of single commands come back as results: a script Redis refuses (at
                # maxmemory with noeviction, which PUBLISH alone passes) must not cost the rest.
                results = await pipe.execute(raise_on_error=False)
            _deliver_cancellation()
            refused = [
                envelope
                for envelope, result in zip(self._sending, results, strict=True)
                if isinstance(result, redis.ResponseError)
            ]
            sent, self._sending = self._sending, []
            if refused:
                await self._publish_unnumbered(client, refused, results)
            await self._count_unheard(client, sent, results)

    async def _queue(self, pipe: Any, envelope: Envelope, emit: Any) -> None:
        """Add the publication of one envelope to a pipeline: numbered by the script, or not."""
        if envelope.numbered:
            keys, args = self._emit_arguments(envelope)
            await emit(keys, args, client=pipe)
        else:
            channel = self._channel_for(envelope.path, envelope.stream)
            pipe.execute_command(self.PUBLISH_COMMAND, channel, envelope.pack())

    async def _count_unheard(
        self, client: redis.asyncio.Redis, sent: list[Envelope], results: list[Any]
    ) -> None:
        """Count the frames fewer processes received than are alive (resubscribing, frozen, dead
        but not yet expired): PUBLISH tells how many subscribers got each. Numbered frames are not
        counted here: a process that missed them reads them back (or counts them itself)."""
        sharing = self.sharing
        if sharing is None or not sharing.healthy:
            return
        counts = [result for result in results if isinstance(result, int)]
        if counts and max(counts) > sharing.alive:  # a process started since the last refresh
            sharing.alive = max(counts)
        heard = [
            (envelope, result)
            for envelope, result in zip(sent, results, strict=True)
            if not envelope.numbered and isinstance(result, int) and result < sharing.alive
        ]
        if not heard:
            return
        # The count of live processes may be older than a graceful stop: ask again before counting.
        try:
            seconds, microseconds = await client.time()
            now = int(seconds) * 1000 + int(microseconds) // 1000
            sharing.alive = int(await client.zcount(sharing.keys.processes, f"({now}", "+inf"))
        except _CONNECTION_ERRORS:
            return
        _deliver_cancellation()
        for envelope, receivers in heard:
            if receivers < sharing.alive:
                delivery.record_drop(delivery.BACKPLANE_MISSED, envelope.path, sharing.alive - receivers)

    async def _publish_unnumbered(
        self, client: redis.asyncio.Redis, refused: list[Envelope], results: list[Any]
    ) -> None:
        """Publish without numbers what Redis refused to number; its clients cannot replay these."""
        error = next(result for result in results if isinstance(result, redis.ResponseError))
        logger.warning(
            "Redis refused %d emits (%s): published without numbers, so without recovery", len(refused), error
        )
        unnumbered = [dataclasses.replace(envelope, numbered=False) for envelope in refused]
        self._deliver_unnumbered(refused)
        async with client.pipeline(transaction=False) as pipe:
            for envelope in unnumbered:
                channel = self._channel_for(envelope.path, envelope.stream)
                pipe.execute_command(self.PUBLISH_COMMAND, channel, envelope.pack())
            outcomes = await pipe.execute(raise_on_error=False)
        _deliver_cancellation()
        for envelope, outcome in zip(unnumbered, outcomes, strict=True):
            if isinstance(outcome, redis.ResponseError):
                delivery.record_drop(delivery.BACKPLANE_UNREACHABLE, envelope.path)

    async def _receive(self, pubsub: PubSub, client: redis.asyncio.Redis) -> None:
        loop = asyncio.get_running_loop()
        # Subscribed (again): first the frames numbered while this process was not listening.
        await self._fill_all(client)
        while True:
            # Blocking reads: a timeout on each read would cost a timer per message; _watch
            # looks after silent connections instead.
            message = await pubsub.get_message(timeout=None)
            _deliver_cancellation()
            self._heard = loop.time()
            if message is None or message["type"] != "message":
                continue
            await self._on_message(client, message["data"])

    async def _on_message(self, client: redis.asyncio.Redis, data: Any) -> None:
        """Deliver one message: a numbered frame after the frames before it that this process missed."""
        envelope = self._envelope(data)
        if envelope is None:
            return
        if envelope.seq is not None:
            key = (envelope.path, envelope.stream)
            last = self._delivered.get(key)
            if last is not None and envelope.seq <= last:
                return  # delivered already, by a fill
            if last is not None and envelope.seq > last + 1:
                await self._fill(client, key, last, envelope.seq - 1)
            self._track(key, envelope.seq)
        self._hand_over(envelope)

    async def _watch(self, pubsub: PubSub) -> None:
        """PING a subscription silent for `keepalive` seconds; no answer as long again: it is lost."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.keepalive)
            if loop.time() - self._heard < self.keepalive:
                continue
            # A silent connection may be a dead one (a cable pulled, a frozen server): ask.
            await pubsub.ping()
            _deliver_cancellation()
            await asyncio.sleep(self.keepalive)
            if loop.time() - self._heard >= 2 * self.keepalive:
                raise redis.ConnectionError(f"Redis did not answer a PING within {self.keepalive}s")

    def _envelope(self, data: Any) -> Envelope | None:
        """The envelope a message carries, if this process should deliver it (markers are handled here)."""
        if isinstance(data, bytes) and data.startswith(recovery_redis.MARKER_PREFIX):
            self._marker_arrived(data)
            return None
        try:
            envelope = Envelope.unpack(data)
        except (ValueError, TypeError, RecursionError):
            logger.warning("Ignoring a message on Redis channel %r that is not an envelope", self.channel)
            return None
        # Ours came back: delivered here already, unless Redis numbered it (then nobody has yet).
        if (envelope.origin == self.id and envelope.seq is None) or self.deliver is None:
            return None
        return envelope

    def _hand_over(self, envelope: Envelope) -> None:
        if self.deliver is None:
            return
        try:
            self.deliver(envelope)
        except Exception:
            logger.exception("Delivering an emit from another process to %r failed", envelope.path)

    def _drop_unsent(self) -> None:
        """Count what was queued or being sent when the connection went: it is not retried.

        The numbered ones had not reached this process's clients either: they get them now.
        """
        unsent = [*self._sending, *self._pending]
        self._sending = []
        self._pending.clear()
        self._deliver_unnumbered(unsent)
        counts = collections.Counter(envelope.path for envelope in unsent)
        for path, count in counts.items():
            delivery.record_drop(delivery.BACKPLANE_UNREACHABLE, path, count)

    @staticmethod
    async def _close(client: redis.asyncio.Redis, pubsub: PubSub) -> None:
        # The connection may already be broken; closing it must not raise on top of that.
        await close_pubsub(pubsub)
        with contextlib.suppress(*_CONNECTION_ERRORS):
            await client.aclose()

    # Shared recovery -----------------------------------------------------------------------------

    @property
    def replay_ready(self) -> bool:
        """Whether Redis can number frames and be read now."""
        return self.state == CONNECTED and self._client is not None

    def call_when_replay_ready(self, socket: Any) -> bool:
        """Call ``socket.backplane_ready()`` once Redis is connected again (or for the first time).

        A connection that joins a stream while Redis connects or is unreachable waits so for its
        position (at most `WAITING_LIMIT` connections wait; one that closes meanwhile is dropped).
        """
        if self.replay_ready or self.state == STOPPED:
            return False
        if socket not in self._waiting and len(self._waiting) >= self.WAITING_LIMIT:
            logger.warning(
                "%d connections already wait for the Redis backplane: %r gets no position",
                len(self._waiting),
                socket,
            )
            return False
        self._waiting.add(socket)
        return True

    def _wake_waiting(self) -> None:
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

    async def _declare_recovery(self, client: redis.asyncio.Redis) -> None:
        """Tell Redis which paths recover, so that frames from an Emitter are numbered too."""
        from tornado_websockets.tornadowrapper import TornadoWrapper

        paths = {
            path: recovery_redis.conf_value(websocket.replay.seconds, websocket.replay.size)
            for path, websocket in TornadoWrapper.websockets.items()
            if websocket.replay is not None
        }
        for path, bounds in paths.items():
            await client.hset(self._keys(path).conf, path, bounds)

    def _keys(self, path: str) -> ReplayKeys:
        """The recovery keys of ``path``."""
        return ReplayKeys(self.channel, path)

    def _channel_for(self, path: str, stream: str) -> str:
        """The channel frames of ``stream`` travel on: one for everything here."""
        return self.channel

    def _emit_arguments(self, envelope: Envelope) -> tuple[list[str], list[Any]]:
        keys = self._keys(envelope.path)
        stream = envelope.stream
        bounds = ""
        if envelope.numbered:  # from this server: its own bounds, whatever Redis's hash holds now
            from tornado_websockets.tornadowrapper import TornadoWrapper

            websocket = TornadoWrapper.runtime.websocket_for(envelope.path)
            if websocket is not None and websocket.replay is not None:
                bounds = recovery_redis.conf_value(websocket.replay.seconds, websocket.replay.size)
        return (
            [keys.conf, keys.seq(stream), keys.frames(stream)],
            [
                self._channel_for(envelope.path, stream),
                envelope.header(),
                envelope.frame,
                envelope.path,
                codec.dumps(stream),
                recovery_redis.HISTORY_SECONDS * 1000,
                bounds,
                self.PUBLISH_COMMAND,
            ],
        )

    async def replay_since(self, path: str, stream: str, seen: int | None, seconds: float) -> SharedReplay:
        """The last number of ``stream`` and its kept frames after ``seen`` (None: none wanted).

        Returns once every frame numbered before the read has reached this process.

        :raise ConnectionError: Redis cannot be reached, or the read's marker did not come back
            within the broker's timeout.
        """
        client = self._client
        if client is None or self.state != CONNECTED:
            raise ConnectionError(f"the Redis backplane is {self.state}")
        keys = self._keys(path)
        token = uuid.uuid4().hex
        arrived = self._markers[token] = asyncio.get_running_loop().create_future()
        try:
            reply = await self._read_script(
                [keys.seq(stream), keys.frames(stream), keys.epoch],
                [
                    "" if seen is None else f"0-{seen + 1}",
                    seconds,
                    self._channel_for(path, stream),
                    recovery_redis.marker(token),
                    recovery_redis.new_epoch(),
                    recovery_redis.HISTORY_SECONDS * 1000,
                    self.PUBLISH_COMMAND,
                ],
            )
            await asyncio.wait_for(arrived, self.timeout)
        except (*_CONNECTION_ERRORS, TimeoutError) as error:
            raise ConnectionError(f"shared recovery could not be read ({error!r})") from error
        finally:
            self._markers.pop(token, None)
        return SharedReplay.parse(reply)

    def _track(self, key: tuple[str, str], seq: int) -> None:
        """Remember the last number delivered of a stream while this process has members in it."""
        if self._has_members(*key):
            self._delivered[key] = seq
        else:
            self._delivered.pop(key, None)

    @staticmethod
    def _has_members(path: str, stream: str) -> bool:
        from tornado_websockets.tornadowrapper import TornadoWrapper

        websocket = TornadoWrapper.runtime.websocket_for(path)
        if websocket is None or websocket.replay is None:
            return False
        return bool(websocket.handlers) if stream == recovery.BROADCAST_STREAM else stream in websocket.rooms

    async def _fill_all(self, client: redis.asyncio.Redis) -> None:
        """After subscribing again: deliver what each stream with members here got meanwhile."""
        for key, last in list(self._delivered.items()):
            if not self._has_members(*key):
                del self._delivered[key]
                continue
            current = await client.get(self._keys(key[0]).seq(key[1]))
            _deliver_cancellation()
            if current is None:  # Redis lost the stream (restarted, flushed): nothing to read back
                await self._resync(client, key, None)
            elif int(current) > last:
                await self._fill(client, key, last, int(current))

    async def _fill(self, client: redis.asyncio.Redis, key: tuple[str, str], last: int, upto: int) -> None:
        """Deliver the frames numbered after ``last`` up to ``upto``, read back from Redis; they
        were published while this process was not subscribed. Those Redis no longer keeps are
        lost to the members here: they get ``resync`` and the position before the first frame
        still kept, then the kept ones; the frames lost are counted."""
        path, stream = key
        wanted = upto - last
        frames_key = self._keys(path).frames(stream)
        # The newest ones, at most FILL_LIMIT: a stream keeps its last frames, not its first.
        reply = await client.xrevrange(
            frames_key, f"0-{upto}", f"0-{last + 1}", count=min(wanted, self.FILL_LIMIT)
        )
        _deliver_cancellation()
        entries: list[Any] = list(reply or [])
        numbers = [recovery_redis.entry_number(entry_id) for entry_id, _ in entries]
        kept: list[Any] = []
        if numbers and numbers[0] == upto and numbers == list(range(upto, upto - len(numbers), -1)):
            kept = list(reversed(entries))
        first = upto + 1 - len(kept)  # the first frame delivered from Redis
        if first > last + 1:
            # How many is unknown when the numbers are far apart (Redis lost its data): one at least.
            lost = first - 1 - last
            await self._resync(client, key, first - 1, lost if lost <= self.FILL_LIMIT else 1)
        if kept:
            logger.info(
                "Read back %d frames of %r on %s published while resubscribing", len(kept), stream, path
            )
        for entry_id, fields in kept:
            envelope = _stored_envelope(path, stream, recovery_redis.entry_number(entry_id), fields)
            self._hand_over(envelope)
        self._track(key, upto)

    async def _resync(
        self, client: redis.asyncio.Redis, key: tuple[str, str], upto: int | None, lost: int = 0
    ) -> None:
        """Tell the members here of a stream that its frames up to ``upto`` (None: its last) are
        lost to them: ``resync``, then their new position. ``lost`` frames are counted."""
        from tornado_websockets.tornadowrapper import TornadoWrapper

        path, stream = key
        keys = self._keys(path)
        arguments = [
            "",
            0,
            self._channel_for(path, stream),
            "",
            recovery_redis.new_epoch(),
            recovery_redis.HISTORY_SECONDS * 1000,
            self.PUBLISH_COMMAND,
        ]
        reply = await self._read_script(
            [keys.seq(stream), keys.frames(stream), keys.epoch], arguments, client=client
        )
        _deliver_cancellation()
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
        websocket = TornadoWrapper.runtime.websocket_for(path)
        if websocket is not None:
            members = (
                websocket.handlers if stream == recovery.BROADCAST_STREAM else websocket.rooms.members(stream)
            )
            for handler in tuple(members):
                handler.write_resync(stream, position, shared.epoch, shared.secret)
        self._track(key, position)

    def _marker_arrived(self, data: bytes) -> None:
        try:
            token = codec.loads(data)["m"]
        except (ValueError, TypeError, KeyError):
            return
        arrived = self._markers.get(token) if isinstance(token, str) else None
        if arrived is not None and not arrived.done():
            arrived.set_result(None)

    def _deliver_unnumbered(self, envelopes: list[Envelope]) -> None:
        """Give this process's clients the numbered envelopes Redis will not number now."""
        if self.deliver is None:
            return
        for envelope in envelopes:
            if envelope.numbered:
                # Still marked numbered (it carries no number): its clients' writes wait for it.
                self.deliver(envelope)

    # Presence and metrics: see tornado_websockets.presence_redis -------------------------------

    def presence_changed(self, socket: Any, room: str | None, present: bool) -> bool:
        """Share a connection opening or joining ``room`` (``present``), or the reverse (on the loop).

        Returns True when the ``joined`` / ``left`` events are decided across every process
        (once per user), so the connection must not decide them alone; False while presence
        sharing fails, so that they are decided in this process meanwhile.
        """
        if self.sharing is None:
            return False
        self.sharing.changed(socket, room, present)
        return self.sharing.healthy

    async def presence(self, path: str, room: str | None, local: tuple[Member, ...]) -> tuple[Member, ...]:
        """This process's members (live) and those of every other live process."""
        shared = None if self.sharing is None else await self.sharing.members(path, room)
        return local if shared is None else local + shared

    def presence_sync(self, path: str, room: str | None) -> tuple[Member, ...]:
        """The members of every live server process, from a process that runs no server."""
        return self._sharing().members_sync(path, room)

    async def snapshots(self) -> list[dict[str, Any]]:
        """This process's snapshot (live) and those every other live process last shared."""
        from tornado_websockets import metrics

        local = metrics.snapshot()
        shared = None if self.sharing is None else await self.sharing.snapshots()
        return [local] if shared is None else [local, *shared]

    def snapshots_sync(self) -> list[dict[str, Any]]:
        """The snapshots every live server process last shared (within ``presence_ttl``)."""
        return self._sharing().snapshots_sync()

    def _sharing(self) -> SharedPresence:
        if self.sharing is None:  # a process that runs no server: queries only
            self.sharing = SharedPresence(
                self.url, self.channel, self.id, self.presence_ttl, self.timeout, self.CLUSTER
            )
        return self.sharing

    # Thread side ---------------------------------------------------------------------------------

    def publish_sync(self, envelope: Envelope) -> None:
        """Publish from a thread or a process that runs no server loop (a view, a worker)."""
        self.publish_blocking(envelope)

    def publish_blocking(self, envelope: Envelope) -> int:
        """Publish now, blocking; returns how many server processes received the envelope.

        When Redis cannot be reached the envelope is counted as dropped and 0 is returned.
        """
        try:
            client = self._sync()
            with self._sync_lock:
                if self._emit_script is None:
                    self._emit_script = client.register_script(recovery_redis.EMIT_SCRIPT)
                emit = self._emit_script
            # Through the script, which numbers the frame if a server declared the path recovering.
            keys, args = self._emit_arguments(envelope)
            receivers = emit(keys, args)[1]
        except _CONNECTION_ERRORS as error:
            delivery.record_drop(delivery.BACKPLANE_UNREACHABLE, envelope.path)
            if not self._sync_failing:
                logger.warning("Redis backplane %s unreachable (%s)", _redacted(self.url), error)
            self._sync_failing = True
            return 0
        if self._sync_failing:
            logger.warning("Redis backplane %s reached again", _redacted(self.url))
            self._sync_failing = False
        return int(receivers)

    def _sync(self) -> redis.Redis:
        with self._sync_lock:
            if self._sync_client is None:
                self._sync_client = redis.Redis.from_url(
                    self.url,
                    socket_timeout=self.timeout,
                    socket_connect_timeout=self.timeout,
                    socket_keepalive=True,
                    # One retry, at once: a pooled connection may have died with a Redis restart.
                    retry=redis.retry.Retry(NoBackoff(), 1),
                )
            return self._sync_client

    def close_sync(self) -> None:
        """Close the connections `publish_sync` opened; it opens new ones if called again."""
        with self._sync_lock:
            client, self._sync_client = self._sync_client, None
            self._emit_script = None
        if client is not None:
            client.close()


def _stored_envelope(path: str, stream: str, seq: int, fields: dict[Any, Any]) -> Envelope:
    """The envelope of a frame read back from a recovery stream."""
    frame, header = fields.get(b"f", b""), fields.get(b"h")
    if header is not None:
        with contextlib.suppress(ValueError, TypeError):
            return Envelope.unpack(header + b"\n" + frame)
    room = None if stream == recovery.BROADCAST_STREAM else stream
    return Envelope(path, frame, room, seq=seq)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
