"""The Redis Cluster backplane's old import path: see `tornado_websockets.redis.cluster`."""

from __future__ import annotations

from tornado_websockets.redis.cluster import RedisClusterBroker, ShardedChannels, is_cluster_url
from tornado_websockets.redis.cluster import without_cluster as _without_cluster

__all__ = ["RedisClusterBroker", "ShardedChannels", "_without_cluster", "is_cluster_url"]
