"""Publishing from a thread or a process that runs no server loop (a view, a worker, a script).

One `SyncPublisher` serves both the broker's ``publish_sync`` and the
`~tornado_websockets.emitter.Emitter`: each frame goes through the emit script, which numbers it
when a server declared its path recovering.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from redis.commands.core import Script

from tornado_websockets import delivery
from tornado_websockets.broker import Envelope
from tornado_websockets.redis import replay
from tornado_websockets.redis.channels import Channels, SingleChannel
from tornado_websockets.redis.client import CONNECTION_ERRORS, sync_client
from tornado_websockets.redis.common import redacted
from tornado_websockets.redis.recovery import emit_arguments

__all__ = ["SyncPublisher"]

# The name the docs give (docs/scaling.rst) and logging configurations use, from before the move.
logger = logging.getLogger("tornado_websockets.broker_redis")


def _no_bounds(path: str) -> str:
    return ""


class SyncPublisher:
    """Publishes envelopes now, blocking; safe from several threads.

    :param url: the Redis URL (without ``?channel=``).
    :param channel: the backplane's channel.
    :param channels: where frames travel (`~tornado_websockets.redis.channels.SingleChannel`, or
        `~tornado_websockets.redis.cluster.ShardedChannels` for Redis Cluster).
    :param timeout: seconds allowed to connect and for each command.
    :param bounds: the recovery bounds of a path this process serves (for numbered envelopes).
    """

    def __init__(
        self,
        url: str,
        channel: str,
        channels: Channels | None = None,
        timeout: float = 5.0,
        bounds: Callable[[str], str] = _no_bounds,
    ) -> None:
        self.url = url
        self.channel = channel
        self.channels: Channels = channels or SingleChannel()
        self.timeout = timeout
        self.bounds = bounds
        self._client: redis.Redis | None = None
        self._script: Script | None = None  # EMIT_SCRIPT, registered with the client
        self._lock = threading.Lock()
        self._failing = False

    def __repr__(self) -> str:
        return f"<SyncPublisher {redacted(self.url)} channel={self.channel!r}>"

    def publish(self, envelope: Envelope) -> int:
        """Publish now, blocking; returns how many server processes received the envelope.

        When Redis cannot be reached the envelope is counted as dropped and 0 is returned.
        """
        try:
            emit = self._emit()
            bounds = self.bounds(envelope.path) if envelope.numbered else ""
            keys, args = emit_arguments(self.channels, self.channel, envelope, bounds)
            # Through the script, which numbers the frame if a server declared the path recovering.
            receivers = emit(keys, args)[1]
        except CONNECTION_ERRORS as error:
            delivery.record_drop(delivery.BACKPLANE_UNREACHABLE, envelope.path)
            if not self._failing:
                logger.warning("Redis backplane %s unreachable (%s)", redacted(self.url), error)
            self._failing = True
            return 0
        if self._failing:
            logger.warning("Redis backplane %s reached again", redacted(self.url))
            self._failing = False
        return int(receivers)

    def _emit(self) -> Script:
        with self._lock:
            if self._client is None:
                self._client = sync_client(self.url, self.timeout, self.channels.cluster)
            if self._script is None:
                self._script = self._client.register_script(replay.EMIT_SCRIPT)
            return self._script

    def close(self) -> None:
        """Close the connection; the next `publish` opens a new one."""
        with self._lock:
            client, self._client = self._client, None
            self._script = None
        if client is not None:
            client.close()
