"""Which backplane a URL names: the in-process `~tornado_websockets.broker.Broker` or a Redis one.

Above `tornado_websockets.broker` and `tornado_websockets.redis`, so that the base module never
names its own subclasses.
"""

from __future__ import annotations

from tornado_websockets.broker import Broker

__all__ = ["broker_from_url"]


def broker_from_url(url: str | None) -> Broker:
    """The broker for a URL: ``None`` or ``memory://`` for in-process, ``redis://...`` for Redis
    (``?cluster=1`` for a Redis Cluster).

    :raise ImportError: a Redis URL without the ``redis`` extra installed.
    :raise ValueError: a URL of no known backplane.
    """
    if url is None or url in {"", "memory://"}:
        return Broker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            # The extra first: the modules below may be imported already, the extra since removed.
            import redis  # noqa: F401

            from tornado_websockets.redis.broker import RedisBroker
            from tornado_websockets.redis.cluster import RedisClusterBroker, is_cluster_url
        except ImportError as error:
            raise ImportError(
                "The Redis backplane needs the redis package: pip install 'django-tornado-websockets[redis]'"
            ) from error
        return RedisClusterBroker(url) if is_cluster_url(url) else RedisBroker(url)
    raise ValueError(f"Unknown backplane URL {url!r}: use memory:// or redis://host:port/db.")
