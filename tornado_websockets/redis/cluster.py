"""The Redis backplane on a Redis Cluster (7+): hash-tagged keys and sharded pub/sub.

::

    TornadoWrapper.use_broker("redis://127.0.0.1:7000/0?cluster=1")   # any node of the cluster
    TornadoWrapper.use_broker("redis://10.0.0.1:7000,10.0.0.2:7000/0?cluster=1")   # several

Every key of a path carries the hash tag ``{C:P}`` (channel ``C``, path ``P``), so a script
touches one slot, and the paths spread over the cluster's shards. Each stream (the path's ``"*"``
and each room) has a sharded channel of its own, ``{C:P}:S``, published with ``SPUBLISH``. A
process subscribes (``SSUBSCRIBE``, on the shard that owns the channel) only to the streams it
has members in: ``"*"`` of a path while it has a connection there, a room while one of its
connections is in it; it unsubscribes when the last one goes. So a process receives only the
frames its clients want, instead of every frame of every path.

Everything else is the single-Redis backplane's: `ShardedChannels` is the strategy a
`~tornado_websockets.redis.broker.RedisBroker` is given (`RedisClusterBroker` does so).

The broker reconnects from the nodes the cluster had at its last connection, then those the URL
names, so the death of the node the URL names does not stop it. Each shard's subscription is
PINGed after ``keepalive`` seconds of silence (a frozen primary is given up after twice that); a
shard that stops serving a channel (its slot migrated, or the node became a replica in a
failover: Redis sends ``SUNSUBSCRIBE``) makes the broker subscribe again from a fresh slot map,
publishing meanwhile, and read back what it missed. Not in this mode: counting the frames fewer
processes heard than are alive (a sharded channel has only the processes with members as
subscribers).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Coroutine
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff

from tornado_websockets.redis.broker import RedisBroker
from tornado_websockets.redis.channels import OnMessage
from tornado_websockets.redis.client import CONNECTION_ERRORS, async_client, close_pubsub, cluster_nodes
from tornado_websockets.redis.common import raise_if_cancelling, text
from tornado_websockets.redis.replay import ReplayKeys

__all__ = ["RedisClusterBroker", "ShardedChannels", "is_cluster_url"]


def is_cluster_url(url: str) -> bool:
    """Whether a backplane URL asks for Redis Cluster (``?cluster=1``)."""
    _, _, query = url.partition("?")
    return any(pair in {"cluster=1", "cluster=yes", "cluster=true"} for pair in query.split("&"))


def without_cluster(url: str) -> str:
    """The URL without its ``cluster=`` query parameter."""
    base, _, query = url.partition("?")
    rest = "&".join(pair for pair in query.split("&") if pair and not pair.startswith("cluster="))
    return f"{base}?{rest}" if rest else base


class ShardedChannels:
    """A sharded channel per stream, subscribed while this process has members in the stream."""

    cluster = True
    publish_command = "SPUBLISH"
    counts_unheard = False

    def __init__(self) -> None:
        #: How many local members want each sharded channel.
        self.wanted: collections.Counter[str] = collections.Counter()
        self._changed: asyncio.Event | None = None
        self._shards: _Shards | None = None  # while connected
        #: The (host, port) of every node of the cluster when last connected: a reconnection
        #: starts from them, not only from the URL's.
        self.known: tuple[tuple[str, int], ...] = ()

    def __repr__(self) -> str:
        return f"ShardedChannels(wanted={len(self.wanted)})"

    def client(self, url: str, timeout: float) -> redis.asyncio.Redis:
        """A cluster client starting from the nodes known from the last connection, then the URL's."""
        return async_client(url, timeout, cluster=True, known=self.known)

    def keys(self, channel: str, path: str) -> ReplayKeys:
        """The recovery keys of ``path``, hash-tagged into one slot."""
        return ReplayKeys(channel, path, tagged=True)

    def channel_for(self, channel: str, path: str, stream: str) -> str:
        """The stream's own sharded channel, in the slot of its path's keys."""
        return self.keys(channel, path).pubsub(stream)

    def subscription(
        self, client: redis.asyncio.Redis, channel: str, timeout: float, keepalive: float
    ) -> _Shards:
        """One pub/sub connection per primary, subscribed to the channels local members want."""
        self._changed = asyncio.Event()
        self._shards = _Shards(self, client, timeout, keepalive)
        return self._shards

    def membership_changed(self, channel: str, path: str, stream: str, present: bool) -> None:
        """Subscribe to a stream's channel with its first local member, unsubscribe after its last."""
        name = self.channel_for(channel, path, stream)
        if present:
            self.wanted[name] += 1
        else:
            self.wanted[name] -= 1
            if self.wanted[name] <= 0:
                del self.wanted[name]
        if self._changed is not None:
            self._changed.set()

    async def before_read(self, channel: str) -> None:
        """Wait until this process is subscribed to ``channel`` (a read's marker comes back on it)."""
        shards = self._shards
        if shards is None:
            raise ConnectionError("the Redis backplane is not subscribed")
        if channel in shards.active:
            return
        if self._changed is not None:
            self._changed.set()
        future = shards.confirmed.setdefault(channel, asyncio.get_running_loop().create_future())
        try:
            await asyncio.wait_for(asyncio.shield(future), shards.timeout)
        except TimeoutError as error:
            raise ConnectionError(f"no subscription to {channel!r} within {shards.timeout}s") from error

    async def reconcile(self, shards: _Shards) -> None:
        """Subscribe to the channels local members want, unsubscribe from the others, as they change."""
        assert self._changed is not None  # made with the subscription
        while True:
            await self._changed.wait()
            self._changed.clear()
            wanted = set(self.wanted) | set(shards.confirmed)
            for channel in wanted - set(shards.channels):
                name = shards.node_of(channel)
                shards.channels[channel] = name
                shards.confirmed.setdefault(channel, asyncio.get_running_loop().create_future())
                await asyncio.wait_for(shards.pubsubs[name].ssubscribe(channel), shards.timeout)
                raise_if_cancelling()
            for channel in set(shards.channels) - wanted:
                name = shards.channels.pop(channel)
                shards.active.discard(channel)
                await shards.pubsubs[name].sunsubscribe(channel)
                raise_if_cancelling()


class _Shards:
    """One pub/sub connection per primary of the cluster, and the sharded channels each holds."""

    def __init__(self, strategy: ShardedChannels, client: Any, timeout: float, keepalive: float) -> None:
        self.strategy = strategy
        self.client = client  # redis-py's cluster client: its slot map is not on the plain client's type
        self.timeout = timeout
        self.keepalive = keepalive
        self.heard: dict[str, float] = {}  # node name -> loop time of its last message
        self.pubsubs: dict[str, PubSub] = {}  # node name -> its connection
        self.channels: dict[str, str] = {}  # subscribed (or being subscribed) channel -> node name
        self.active: set[str] = set()  # the channels Redis confirmed
        self.confirmed: dict[str, asyncio.Future[None]] = {}

    def node_of(self, channel: str) -> str:
        slot = self.client.keyslot(channel)
        return str(self.client.nodes_manager.get_node_from_slot(slot).name)

    async def open(self) -> None:
        """Connect to every primary and subscribe to the wanted channels, each on its shard; wait for
        Redis to confirm them all."""
        await self.client.initialize()
        # A no-op for a client initialized already (subscribing again on a live connection): the
        # slots may have moved since, which is why this subscription is made again.
        await self.client.nodes_manager.initialize()
        self.strategy.known = tuple((node.host, int(node.port)) for node in self.client.get_nodes())
        now = asyncio.get_running_loop().time()
        for node in self.client.get_primaries():
            self.heard[node.name] = now
            connection = redis.asyncio.Redis(
                host=node.host,
                port=node.port,
                socket_timeout=None,  # blocking reads; a dead node fails the socket
                socket_connect_timeout=self.timeout,
                socket_keepalive=True,
                retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
            )
            self.pubsubs[node.name] = connection.pubsub()
        by_node: dict[str, list[str]] = collections.defaultdict(list)
        for channel in set(self.strategy.wanted):
            by_node[self.node_of(channel)].append(channel)
        for name, wanted in by_node.items():
            pubsub = self.pubsubs[name]
            # Bounded: the connection reads without a timeout, and a frozen node accepts it all the same.
            await asyncio.wait_for(pubsub.ssubscribe(*wanted), self.timeout)
            raise_if_cancelling()
            await self._confirmations(pubsub, len(wanted))
            self.channels.update(dict.fromkeys(wanted, name))
            self.active.update(wanted)

    async def _confirmations(self, pubsub: PubSub, count: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while count and (remaining := deadline - loop.time()) > 0:
            message = await pubsub.get_message(timeout=remaining)
            raise_if_cancelling()
            if message is not None and message["type"] == "ssubscribe":
                count -= 1
        if count:
            raise redis.TimeoutError(f"Redis did not confirm the subscriptions within {self.timeout}s")

    def receivers(self, on_message: OnMessage) -> list[Coroutine[Any, Any, None]]:
        readers = [self._receive(name, pubsub, on_message) for name, pubsub in self.pubsubs.items()]
        return [self.strategy.reconcile(self), self._watch(), *readers]

    async def _receive(self, name: str, pubsub: PubSub, on_message: OnMessage) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not pubsub.subscribed:  # nothing to read on this shard yet
                await asyncio.sleep(0.05)
                self.heard[name] = loop.time()
                continue
            message = await pubsub.get_message(timeout=None)
            raise_if_cancelling()
            self.heard[name] = loop.time()
            if message is None:
                continue
            kind = message["type"]
            if kind == "smessage":
                await on_message(message["data"])
            elif kind == "sunsubscribe" and text(message["channel"]) in self.channels:
                # Not asked for (reconcile forgets a channel before leaving it): the node no longer
                # serves its slot (migrated, or the node is a replica now). Subscribe again from a
                # fresh slot map; the broker reads back what was published meanwhile.
                raise redis.ConnectionError(f"{name} stopped serving {text(message['channel'])!r}")
            elif kind == "ssubscribe":
                channel = text(message["channel"])
                self.active.add(channel)
                future = self.confirmed.pop(channel, None)
                if future is not None and not future.done():
                    future.set_result(None)

    async def _watch(self) -> None:
        """PING each shard's subscription after `keepalive` seconds of silence; a shard silent
        twice as long (a frozen or unreachable primary) is lost."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.keepalive)
            silent = [
                (name, pubsub)
                for name, pubsub in self.pubsubs.items()
                if pubsub.subscribed and loop.time() - self.heard[name] >= self.keepalive
            ]
            for _, pubsub in silent:
                await pubsub.ping()
                raise_if_cancelling()
            if not silent:
                continue
            await asyncio.sleep(self.keepalive)
            for name, _ in silent:
                if loop.time() - self.heard[name] >= 2 * self.keepalive:
                    raise redis.ConnectionError(f"{name} did not answer a PING within {self.keepalive}s")

    async def close(self) -> None:
        if self.strategy._shards is self:
            self.strategy._shards = None
        for pubsub in self.pubsubs.values():
            await close_pubsub(pubsub)
            with contextlib.suppress(*CONNECTION_ERRORS):
                await pubsub.connection_pool.disconnect()
        self.pubsubs.clear()
        self.channels.clear()
        self.active.clear()


class RedisClusterBroker(RedisBroker):
    """A backplane through a Redis Cluster with sharded pub/sub (Redis 7+); see the module's docstring.

    A `~tornado_websockets.redis.broker.RedisBroker` given `ShardedChannels`; takes its arguments.
    The URL names any node of the cluster, or several: ``redis://h1:7000,h2:7000/0``.

    :raise ValueError: a node of the URL that does not read ``host:port``.
    """

    def __init__(
        self, url: str = "redis://127.0.0.1:7000/0", channel: str | None = None, **options: Any
    ) -> None:
        options.setdefault("channels", ShardedChannels())
        super().__init__(without_cluster(url), channel, **options)
        cluster_nodes(self.url)  # a URL it could never connect with fails here, not at each attempt
