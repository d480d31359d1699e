"""The Redis backplane, as parts composed by `~tornado_websockets.redis.broker.RedisBroker`.

- `~tornado_websockets.redis.common` and `~tornado_websockets.redis.client`: the helpers every
  part shares (text, cancellation, URLs; connection errors, Redis time, clients).
- `~tornado_websockets.redis.broker`: the connection, the publish queue, the subscription loop.
- `~tornado_websockets.redis.channels`: where frames travel, one channel (`SingleChannel`) or a
  sharded channel per stream (`~tornado_websockets.redis.cluster.ShardedChannels`), passed in.
- `~tornado_websockets.redis.replay` and `~tornado_websockets.redis.recovery`: shared recovery.
- `~tornado_websockets.redis.presence` and `~tornado_websockets.redis.processes`: members,
  process liveness and metrics, beside the backplane.
- `~tornado_websockets.redis.publisher`: publishing from a thread or a process with no server.

The old modules (``broker_redis``, ``broker_redis_cluster``, ``presence_redis``,
``recovery_redis``) re-export these names.
"""
