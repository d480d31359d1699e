"""The Redis backplane on a Redis Cluster (7+): hash-tagged keys and sharded pub/sub.

::

    TornadoWrapper.use_broker("redis://127.0.0.1:7000/0?cluster=1")   # any node of the cluster

Every key of a path carries the hash tag ``{C:P}`` (channel ``C``, path ``P``), so a script
touches one slot, and the paths spread over the cluster's shards. Each stream (the path's ``"*"``
and each room) has a sharded channel of its own, ``{C:P}:S``, published with ``SPUBLISH``. A
process subscribes (``SSUBSCRIBE``, on the shard that owns the channel) only to the streams it
has members in: ``"*"`` of a path while it has a connection there, a room while one of its
connections is in it; it unsubscribes when the last one goes. So a process receives only the
frames its clients want, instead of every frame of every path.

Everything else is the single-Redis backplane's (`tornado_websockets.broker_redis`): local delivery
first, recovery numbered by Redis, read back after resubscribing, presence and metrics shared
(`tornado_websockets.presence_redis`, each command on one key). Not in this mode yet: the
keepalive PING (a node that stops answering is noticed by the socket's timeout), counting the
frames fewer processes heard than are alive (a sharded channel has only the processes with
members as subscribers), and slot migration while running (the process resubscribes only when its
connection fails).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.retry
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff

from tornado_websockets import recovery, recovery_redis
from tornado_websockets.broker import Envelope
from tornado_websockets.broker_redis import (
    _CONNECTION_ERRORS,
    RedisBroker,
    _deliver_cancellation,
    close_pubsub,
    until_one_fails,
)
from tornado_websockets.recovery_redis import ReplayKeys

__all__ = ["RedisClusterBroker", "is_cluster_url"]

logger = logging.getLogger(__name__)


def is_cluster_url(url: str) -> bool:
    """Whether a backplane URL asks for Redis Cluster (``?cluster=1``)."""
    _, _, query = url.partition("?")
    return any(pair in {"cluster=1", "cluster=yes", "cluster=true"} for pair in query.split("&"))


def _without_cluster(url: str) -> str:
    base, _, query = url.partition("?")
    rest = "&".join(pair for pair in query.split("&") if pair and not pair.startswith("cluster="))
    return f"{base}?{rest}" if rest else base


class _Shards:
    """One pub/sub connection per primary of the cluster, and the sharded channels each holds."""

    def __init__(self, client: Any, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self.pubsubs: dict[str, PubSub] = {}  # node name -> its connection
        self.channels: dict[str, str] = {}  # subscribed (or being subscribed) channel -> node name
        self.active: set[str] = set()  # the channels Redis confirmed
        self.confirmed: dict[str, asyncio.Future[None]] = {}

    def node_of(self, channel: str) -> str:
        slot = self.client.keyslot(channel)
        return str(self.client.nodes_manager.get_node_from_slot(slot).name)

    async def open(self, channels: set[str]) -> None:
        """Connect to every primary and subscribe to ``channels``, each on its shard; wait for Redis
        to confirm them all."""
        await self.client.initialize()
        for node in self.client.get_primaries():
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
        for channel in channels:
            by_node[self.node_of(channel)].append(channel)
        for name, wanted in by_node.items():
            pubsub = self.pubsubs[name]
            await pubsub.ssubscribe(*wanted)
            _deliver_cancellation()
            await self._confirmations(pubsub, len(wanted))
            self.channels.update(dict.fromkeys(wanted, name))
            self.active.update(wanted)

    async def _confirmations(self, pubsub: PubSub, count: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while count and (remaining := deadline - loop.time()) > 0:
            message = await pubsub.get_message(timeout=remaining)
            _deliver_cancellation()
            if message is not None and message["type"] == "ssubscribe":
                count -= 1
        if count:
            raise redis.TimeoutError(f"Redis did not confirm the subscriptions within {self.timeout}s")

    async def close(self) -> None:
        for pubsub in self.pubsubs.values():
            await close_pubsub(pubsub)
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await pubsub.connection_pool.disconnect()
        self.pubsubs.clear()
        self.channels.clear()
        self.active.clear()


class RedisClusterBroker(RedisBroker):
    """A backplane through a Redis Cluster with sharded pub/sub (Redis 7+); see the module's docstring.

    Takes the arguments of `~tornado_websockets.broker_redis.RedisBroker`; the URL names any node
    of the cluster.
    """

    PUBLISH_COMMAND = "SPUBLISH"
    CLUSTER = True
    _client_class = redis.asyncio.cluster.RedisCluster

    def __init__(
        self, url: str = "redis://127.0.0.1:7000/0", channel: str | None = None, **options: Any
    ) -> None:
        super().__init__(_without_cluster(url), channel, **options)
        #: How many local members want each sharded channel.
        self.wanted: collections.Counter[str] = collections.Counter()
        self._changed: asyncio.Event | None = None
        self._shards: _Shards | None = None
        self._emit_sha = ""

    def __repr__(self) -> str:
        return "<RedisClusterBroker" + super().__repr__().removeprefix("<RedisBroker")

    # Keys and channels ---------------------------------------------------------------------------

    def _keys(self, path: str) -> ReplayKeys:
        return ReplayKeys(self.channel, path, tagged=True)

    def _channel_for(self, path: str, stream: str) -> str:
        return self._keys(path).pubsub(stream)

    # Membership drives the subscriptions --------------------------------------------------------

    def presence_changed(self, socket: Any, room: str | None, present: bool) -> bool:
        """Subscribe to a stream's channel with its first local member, unsubscribe after its last."""
        channel = self._channel_for(
            socket.websocket.path, recovery.BROADCAST_STREAM if room is None else room
        )
        if present:
            self.wanted[channel] += 1
        else:
            self.wanted[channel] -= 1
            if self.wanted[channel] <= 0:
                del self.wanted[channel]
        if self._changed is not None:
            self._changed.set()
        return super().presence_changed(socket, room, present)

    async def _subscribed(self, channel: str) -> None:
        """Wait until this process is subscribed to ``channel`` (its catch-up reads need it)."""
        shards = self._shards
        if shards is None:
            raise ConnectionError(f"the Redis backplane is {self.state}")
        if channel in shards.active:
            return
        if self._changed is not None:
            self._changed.set()
        future = shards.confirmed.setdefault(channel, asyncio.get_running_loop().create_future())
        try:
            await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError as error:
            raise ConnectionError(f"no subscription to {channel!r} within {self.timeout}s") from error

    async def replay_since(self, path: str, stream: str, seen: int | None, seconds: float) -> Any:
        """See `RedisBroker.replay_since`; subscribed to the stream's channel first, since the read's
        marker comes back on it."""
        await self._subscribed(self._channel_for(path, stream))
        return await super().replay_since(path, stream, seen, seconds)

    # Connection ----------------------------------------------------------------------------------

    def _new_pubsub(self, client: Any) -> Any:
        return _Shards(client, self.timeout)

    async def _subscribe(self, pubsub: Any) -> None:
        self._changed = asyncio.Event()
        await pubsub.open(set(self.wanted))
        self._shards = pubsub

    async def _serve(self, client: Any, pubsub: Any) -> None:
        shards: _Shards = pubsub
        self._read_script = client.register_script(recovery_redis.READ_SCRIPT)
        self._emit_sha = await client.script_load(recovery_redis.EMIT_SCRIPT)  # on every primary
        self._client = client
        try:
            await self._declare_recovery(client)
            await self._fill_all(client)
            self._wake_waiting()
            await until_one_fails(
                self._send(client),
                self._reconcile(shards),
                *(self._receive_shard(pubsub, client) for pubsub in shards.pubsubs.values()),
            )
        finally:
            self._client = None

    async def _receive_shard(self, pubsub: PubSub, client: Any) -> None:
        shards = self._shards
        assert shards is not None  # set by _subscribe
        while True:
            if not pubsub.subscribed:  # nothing to read on this shard yet
                await asyncio.sleep(0.05)
                continue
            message = await pubsub.get_message(timeout=None)
            _deliver_cancellation()
            if message is None:
                continue
            kind = message["type"]
            if kind == "smessage":
                await self._on_message(client, message["data"])
            elif kind == "ssubscribe":
                channel = _text(message["channel"])
                shards.active.add(channel)
                future = shards.confirmed.pop(channel, None)
                if future is not None and not future.done():
                    future.set_result(None)

    async def _reconcile(self, shards: _Shards) -> None:
        """Subscribe to the channels local members want, unsubscribe from the others, as they change."""
        assert self._changed is not None
        while True:
            await self._changed.wait()
            self._changed.clear()
            wanted = set(self.wanted) | set(shards.confirmed)
            for channel in wanted - set(shards.channels):
                name = shards.node_of(channel)
                shards.channels[channel] = name
                shards.confirmed.setdefault(channel, asyncio.get_running_loop().create_future())
                await shards.pubsubs[name].ssubscribe(channel)
                _deliver_cancellation()
            for channel in set(shards.channels) - wanted:
                name = shards.channels.pop(channel)
                shards.active.discard(channel)
                await shards.pubsubs[name].sunsubscribe(channel)
                _deliver_cancellation()

    async def _close(self, client: Any, pubsub: Any) -> None:  # type: ignore[override]
        self._shards = None
        await pubsub.close()
        with contextlib.suppress(*_CONNECTION_ERRORS):
            await client.aclose()

    async def _count_unheard(self, client: Any, sent: list[Envelope], results: list[Any]) -> None:
        """Not counted here: a sharded channel's subscribers are the processes with members in its
        stream, not every live process, so SPUBLISH's count says nothing of who missed a frame."""

    async def _queue(self, pipe: Any, envelope: Envelope, emit: Any) -> None:
        """EVALSHA or SPUBLISH, routed by the cluster pipeline to the shard of the path."""
        if envelope.numbered:
            keys, args = self._emit_arguments(envelope)
            pipe.execute_command("EVALSHA", self._emit_sha, len(keys), *keys, *args)
        else:
            channel = self._channel_for(envelope.path, envelope.stream)
            pipe.execute_command(self.PUBLISH_COMMAND, channel, envelope.pack())

    def _sync(self) -> Any:
        with self._sync_lock:
            if self._sync_client is None:
                self._sync_client = redis.cluster.RedisCluster.from_url(  # type: ignore[assignment]
                    self.url,
                    socket_timeout=self.timeout,
                    socket_connect_timeout=self.timeout,
                    socket_keepalive=True,
                )
            return self._sync_client


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
