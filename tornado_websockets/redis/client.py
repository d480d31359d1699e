"""What every part of the Redis backplane shares that needs redis-py: connection errors, Redis
time, clients, running side by side until one fails."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.exceptions
import redis.retry
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff

__all__ = [
    "CONNECTION_ERRORS",
    "async_client",
    "close_pubsub",
    "cluster_nodes",
    "is_lost",
    "redis_time_ms",
    "redis_time_ms_sync",
    "sync_client",
    "until_one_fails",
]

# redis-py raises these when no node of a cluster answers or the cluster is still forming ("slots
# not covered"): not RedisErrors, so without them a cluster that is down would be logged as a bug at
# every attempt, with a traceback. RedisClusterUnreachableError (8.2 on) is one of them.
_CLUSTER_UNREACHABLE: tuple[type[Exception], ...] = (redis.exceptions.RedisClusterException,)

#: Redis errors and socket errors (``asyncio``'s timeouts are ``OSError`` too), and a cluster that
#: no node of answers: what a lost or missing Redis raises.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, OSError, *_CLUSTER_UNREACHABLE)


#: Errors of one command in a pipeline that mean its connection or its node was lost (a cluster
#: failing over answers CLUSTERDOWN, TRYAGAIN, MOVED), not that Redis refused the command.
_LOST_RESULTS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.AskError,  # MovedError too
    OSError,
    *_CLUSTER_UNREACHABLE,
)


def is_lost(result: object) -> bool:
    """Whether a pipelined command's result says its connection or node was lost."""
    return isinstance(result, _LOST_RESULTS)


def cluster_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A cluster URL naming one node, and the (host, port) of every node it names.

    ``redis://[:password@]host1:port1,host2:port2/0``: any of the nodes may be down when the
    backplane (re)connects, the others are asked.

    :raise ValueError: a node without a valid port.
    """
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isascii() or not port.isdigit():
            raise ValueError(f"Redis Cluster node {item!r} of {url!r} should read host:port.")
        nodes.append((host.strip("[]"), int(port)))
    first = f"{credentials}@{hosts.split(',')[0]}" if credentials else hosts.split(",")[0]
    return urlunsplit(parts._replace(netloc=first)), nodes


async def redis_time_ms(client: redis.asyncio.Redis) -> int:
    """Redis's time in milliseconds: every process scores and compares with the same clock."""
    seconds, microseconds = await client.time()
    return int(seconds) * 1000 + int(microseconds) // 1000


def redis_time_ms_sync(client: redis.Redis) -> int:
    """`redis_time_ms` for a process without a loop."""
    seconds, microseconds = client.time()
    return int(seconds) * 1000 + int(microseconds) // 1000


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
    with contextlib.suppress(*CONNECTION_ERRORS):
        await aclose()


def async_client(
    url: str, timeout: float, cluster: bool = False, known: tuple[tuple[str, int], ...] = ()
) -> redis.asyncio.Redis:
    """A loop-side client; no retries inside redis-py: its owner reconnects, backs off and logs.

    The cluster client is typed as the plain one: the commands the backplane uses take the same
    arguments on both (keys hash-tagged so that each touches one slot). It starts from the
    ``known`` nodes of the cluster (those of its last connection), then those the URL names.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "socket_keepalive": True,
        "retry": redis.asyncio.retry.Retry(NoBackoff(), 0),
    }
    if cluster:
        first, named = cluster_nodes(url)
        every = dict.fromkeys((*known, *named))  # in order, once each
        nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in every]
        client = redis.asyncio.cluster.RedisCluster.from_url(first, startup_nodes=nodes, **options)
        return cast("redis.asyncio.Redis", client)
    return redis.asyncio.Redis.from_url(url, **options)


def sync_client(url: str, timeout: float, cluster: bool = False) -> redis.Redis:
    """A client for a thread or a process without a loop (typed as the plain one, see `async_client`)."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "socket_keepalive": True,
    }
    if cluster:
        first, named = cluster_nodes(url)
        # redis-py types the loop side's ClusterNode, not this one: through a typed name.
        node: Callable[[str, int], Any] = redis.cluster.ClusterNode
        nodes = [node(host, port) for host, port in named]
        return cast("redis.Redis", redis.cluster.RedisCluster.from_url(first, startup_nodes=nodes, **options))
    # One retry, at once: a pooled connection may have died with a Redis restart.
    return redis.Redis.from_url(url, retry=redis.retry.Retry(NoBackoff(), 1), **options)
