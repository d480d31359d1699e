"""Numbers taken for the frames a process could not publish, so that every process sees the gap.

While a process cannot reach Redis, its own clients get its frames at once (without a number) and
the other processes never get them. For a numbered stream that loss would be silent: the numbers
go on from where they were, so no reader on another process sees a gap. `Skipped` counts, per
stream, the numbered frames this process dropped; once connected again it advances each stream's
number by that count (`ADVANCE_SCRIPT`). A reader elsewhere then finds the numbers missing from
the recovery stream at the stream's next frame and gets ``resync``; this process's own members,
who did get those frames, get their new position instead (`SharedRecovery.skipped`).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis.asyncio

from tornado_websockets.redis.common import raise_if_cancelling

if TYPE_CHECKING:
    from tornado_websockets.broker import Envelope
    from tornado_websockets.redis.channels import Channels
    from tornado_websockets.redis.recovery import SharedRecovery

__all__ = ["ADVANCE_SCRIPT", "Skipped"]

logger = logging.getLogger("tornado_websockets.broker_redis")

# KEYS: the stream's seq. ARGV: how many numbers to take, history ms. Returns the new number, or 0
# when Redis has no number for the stream (it lost its data: the epoch changes, readers resync).
ADVANCE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local seq = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return seq
"""

# As in replay.HISTORY_SECONDS: a stream's number is kept a day after its last use.
_HISTORY_MS = 86_400_000


class Skipped:
    """The frames of recovering paths this process dropped, per (path, stream), until Redis takes
    their numbers.

    :param recovers: whether a path recovers (a frame emitted while the backplane was not
        connected is not marked ``numbered``, its path is).
    """

    def __init__(self, recovers: Callable[[str], bool]) -> None:
        self.recovers = recovers
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def __repr__(self) -> str:
        return f"<Skipped {sum(self.counts.values())} frames in {len(self.counts)} streams>"

    def add(self, envelopes: list[Envelope]) -> None:
        """Count the frames of recovering paths among frames that will never be published."""
        for envelope in envelopes:
            if envelope.numbered or self.recovers(envelope.path):
                self.counts[envelope.path, envelope.stream] += 1

    def numbered_after_all(self, path: str, stream: str) -> None:
        """A frame counted here had reached Redis after all (it was being sent when the connection
        went, and this process read it back): no number is to be taken for it."""
        key = (path, stream)
        self.counts[key] -= 1
        if self.counts[key] <= 0:
            del self.counts[key]

    async def advance(
        self, client: redis.asyncio.Redis, channels: Channels, channel: str, recovery: SharedRecovery
    ) -> None:
        """Take the numbers of the skipped frames in Redis, stream by stream; what fails stays counted.

        :raise redis.RedisError: Redis was lost meanwhile (the broker reconnects and tries again).
        """
        script = client.register_script(ADVANCE_SCRIPT)
        for (path, stream), count in list(self.counts.items()):
            seq_key = channels.keys(channel, path).seq(stream)
            after = int(await script([seq_key], [count, _HISTORY_MS]))
            raise_if_cancelling()
            del self.counts[path, stream]
            if after:
                logger.warning(
                    "%d frames of %r on %s never reached the other processes: numbers %d to %d skipped",
                    count,
                    stream,
                    path,
                    after - count + 1,
                    after,
                )
                recovery.skipped(path, stream, after - count, after)
