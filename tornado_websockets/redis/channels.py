"""Where the backplane's frames travel: the strategy a `~tornado_websockets.redis.broker.RedisBroker`
is given, one channel for everything (`SingleChannel`, the default) or a sharded channel per stream
(`~tornado_websockets.redis.cluster.ShardedChannels`, Redis Cluster)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

import redis
import redis.asyncio
from redis.asyncio.client import PubSub

from tornado_websockets.redis.client import async_client, close_pubsub
from tornado_websockets.redis.common import raise_if_cancelling
from tornado_websockets.redis.replay import ReplayKeys

__all__ = ["Channels", "OnMessage", "SingleChannel", "Subscription"]

#: Handles one message received (an envelope or a read marker), on the loop.
OnMessage = Callable[[bytes], Awaitable[None]]


class Subscription(Protocol):
    """One connection's subscriptions, from `Channels.subscription`."""

    async def open(self) -> None:
        """Subscribe and wait for Redis to confirm: from then on, nothing published is missed."""
        ...

    def receivers(self, on_message: OnMessage) -> list[Coroutine[Any, Any, None]]:
        """The loops that read the subscriptions (and watch them) until one fails."""
        ...

    async def close(self) -> None:
        """Close the subscriptions' connections; never raises for a broken one."""
        ...


class Channels(Protocol):
    """Where frames travel, and how a process subscribes to them."""

    #: The client is redis-py's cluster client.
    cluster: bool
    #: ``PUBLISH``, or ``SPUBLISH`` for sharded channels.
    publish_command: str
    #: Whether a publication's receiver count tells how many live processes heard it.
    counts_unheard: bool

    def client(self, url: str, timeout: float) -> redis.asyncio.Redis:
        """A new command client for one connection of the broker."""
        ...

    def keys(self, channel: str, path: str) -> ReplayKeys:
        """The recovery keys of ``path`` under the backplane's ``channel``."""
        ...

    def channel_for(self, channel: str, path: str, stream: str) -> str:
        """The channel the frames of ``stream`` travel on."""
        ...

    def subscription(
        self, client: redis.asyncio.Redis, channel: str, timeout: float, keepalive: float
    ) -> Subscription:
        """A new subscription for one connection made with ``client``."""
        ...

    def membership_changed(self, channel: str, path: str, stream: str, present: bool) -> None:
        """A local member entered (``present``) or left ``stream`` of ``path`` (on the loop)."""
        ...

    async def before_read(self, channel: str) -> None:
        """Wait until the read markers of ``channel`` can come back to this process.

        :raise ConnectionError: not subscribed in time.
        """
        ...


class SingleChannel:
    """Every frame on the backplane's one channel, to which every server process subscribes."""

    cluster = False
    publish_command = "PUBLISH"
    counts_unheard = True

    def __repr__(self) -> str:
        return "SingleChannel()"

    def client(self, url: str, timeout: float) -> redis.asyncio.Redis:
        """A client of the one Redis server."""
        return async_client(url, timeout)

    def keys(self, channel: str, path: str) -> ReplayKeys:
        """The recovery keys of ``path``."""
        return ReplayKeys(channel, path)

    def channel_for(self, channel: str, path: str, stream: str) -> str:
        """The one channel, whatever the stream."""
        return channel

    def subscription(
        self, client: redis.asyncio.Redis, channel: str, timeout: float, keepalive: float
    ) -> _ChannelSubscription:
        """A pub/sub connection to the one channel, with a keepalive PING."""
        return _ChannelSubscription(client, channel, timeout, keepalive)

    def membership_changed(self, channel: str, path: str, stream: str, present: bool) -> None:
        """Nothing to do: every process receives every frame."""

    async def before_read(self, channel: str) -> None:
        """Subscribed already: the one channel is subscribed before anything is read."""


class _ChannelSubscription:
    def __init__(self, client: redis.asyncio.Redis, channel: str, timeout: float, keepalive: float) -> None:
        self.channel = channel
        self.timeout = timeout
        self.keepalive = keepalive
        self.pubsub = client.pubsub()
        self._heard = 0.0  # loop time of the last message, PING answers included

        async def disconnect_only(connection: Any, *args: Any, **kwargs: Any) -> None:
            await connection.disconnect()

        # redis-py reconnects a failed pub/sub connection, subscribed again, before it raises the
        # error; until the broker closed it, that subscription nobody reads would take frames that
        # PUBLISH counts as received. The broker reconnects by itself, and reads back what it missed.
        hooked: Any = self.pubsub  # a private hook of redis-py's, on purpose: untyped
        hooked._reconnect = disconnect_only

    async def open(self) -> None:
        await self.pubsub.subscribe(self.channel)
        raise_if_cancelling()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while (remaining := deadline - loop.time()) > 0:
            message = await self.pubsub.get_message(timeout=remaining)
            raise_if_cancelling()
            if message is not None and message["type"] == "subscribe":
                self._heard = loop.time()
                return
        raise redis.TimeoutError(f"Redis did not confirm the subscription within {self.timeout}s")

    def receivers(self, on_message: OnMessage) -> list[Coroutine[Any, Any, None]]:
        return [self._receive(on_message), self._watch(self.pubsub)]

    async def _receive(self, on_message: OnMessage) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Blocking reads: a timeout on each read would cost a timer per message; _watch
            # looks after silent connections instead.
            message = await self.pubsub.get_message(timeout=None)
            raise_if_cancelling()
            self._heard = loop.time()
            if message is not None and message["type"] == "message":
                await on_message(message["data"])

    async def _watch(self, pubsub: PubSub) -> None:
        """PING a subscription silent for `keepalive` seconds; no answer as long again: it is lost."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.keepalive)
            if loop.time() - self._heard < self.keepalive:
                continue
            # A silent connection may be a dead one (a cable pulled, a frozen server): ask.
            await pubsub.ping()
            raise_if_cancelling()
            await asyncio.sleep(self.keepalive)
            if loop.time() - self._heard >= 2 * self.keepalive:
                raise redis.ConnectionError(f"Redis did not answer a PING within {self.keepalive}s")

    async def close(self) -> None:
        await close_pubsub(self.pubsub)
