"""Recovery shared by every server process: Redis numbers the frames and keeps the replay buffer.

With the Redis backplane, a path declared with ``recover=`` has each of its streams (the path's
``"*"`` and each room) numbered by Redis itself, as in Centrifugo: one Lua script takes the next
number, appends the numbered frame to a Redis Stream capped at ``recover_size`` entries, and
publishes it, atomically. Every process, the emitting one included, delivers the frame when it
comes back through pub/sub, so all of them deliver one stream in one order with the same numbers,
and a client that comes back to *any* process can be given exactly what it missed.

Keys, for a channel ``C``, a path ``P`` and a stream ``S``:

- ``C:recover`` (hash): ``P`` -> ``"seconds size"`` for each path that recovers; server processes
  write it when they connect (and with each emit, should the hash have been lost), so that an
  `~tornado_websockets.emitter.Emitter` (which knows nothing of the paths) has its frames
  numbered too. A server's own emits carry their bounds, so they are numbered whatever the hash
  holds.
- ``C:replay:P:epoch``: a random id and a random secret, made when first needed; a Redis that
  lost its data makes new ones, and clients holding positions of the old epoch are sent
  ``resync``. The secret signs the positions handed to clients (see
  `tornado_websockets.recovery.position_token`), the same in every process.
- ``C:replay:P:S:seq``: the last number given. A new stream starts at the current Unix time in
  milliseconds times 1,000, so that a stream whose key expired after a day idle never reuses a
  number a client may still hold.
- ``C:replay:P:grant:G``: a grant ``G`` spent (a client recovered with one of its tokens) or
  revoked (its connection left the stream), kept ``recover`` seconds: its tokens recover nothing
  more, on any process (see `tornado_websockets.recovery`).
- ``C:replay:P:S:frames``: the numbered frames, as a Redis Stream whose entry ids are
  ``0-<number>``, each with the Redis time it was added and the envelope's header; capped by
  length on every append, and expiring ``seconds`` after the last one.

A process remembers the last number it delivered of each stream it has members in. A frame that
comes with a later number than the next one, and every stream after the process subscribed
again, makes it read the frames in between from the stream and deliver them first; when they are
no longer kept, its members of that stream get ``resync`` and their new position.

Reading a client's missed frames publishes a marker on the channel after the read: when it comes
back to the reading process, every frame numbered before the read has been delivered there
(pub/sub keeps the order of publication), so the process knows exactly which frames the
connection still needs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from tornado_websockets import codec
from tornado_websockets.redis.common import text

__all__ = [
    "EMIT_SCRIPT",
    "HISTORY_SECONDS",
    "MARKER_PREFIX",
    "READ_SCRIPT",
    "ReplayKeys",
    "SharedReplay",
    "conf_value",
    "entry_number",
    "marker",
    "missed",
    "new_epoch",
]

#: Seconds a stream's number is kept after its last use.
HISTORY_SECONDS = 86_400
#: Messages on the channel that start so are read markers, not envelopes.
MARKER_PREFIX = b'{"m":'

# KEYS: conf hash, seq, frames. ARGV: channel, envelope header (a JSON object), frame (a JSON
# object, or a MessagePack fixmap: two entries more, as binaryframes.with_sequence adds), path,
# stream as JSON, history ms, the path's bounds when a server sends it ('' from an Emitter), the
# publish command (PUBLISH, or SPUBLISH on Redis Cluster). Returns {the number given or 0 (the path
# does not recover), how many processes received it}.
EMIT_SCRIPT = """
local conf = redis.call('HGET', KEYS[1], ARGV[4])
if ARGV[7] ~= '' then
  if conf ~= ARGV[7] then
    redis.call('HSET', KEYS[1], ARGV[4], ARGV[7])
  end
  conf = ARGV[7]
end
if not conf then
  return {0, redis.call(ARGV[8], ARGV[1], ARGV[2] .. '\\n' .. ARGV[3])}
end
local seconds, size = string.match(conf, '^(%S+) (%S+)$')
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], string.format('%d', ms * 1000))
end
local seq = string.format('%d', redis.call('INCR', KEYS[2]))
redis.call('PEXPIRE', KEYS[2], ARGV[6])
local numbered
if string.byte(ARGV[3], 1) == 123 then
  numbered = string.sub(ARGV[3], 1, -2) .. ',"stream":' .. ARGV[5] .. ',"seq":' .. seq .. '}'
else
  numbered = string.char(string.byte(ARGV[3], 1) + 2) .. string.sub(ARGV[3], 2)
    .. cmsgpack.pack('stream', cjson.decode(ARGV[5]), 'seq', tonumber(seq))
end
local header = string.sub(ARGV[2], 1, -2) .. ',"q":' .. seq .. '}'
local entry = '0-' .. seq
redis.call('XADD', KEYS[3], 'MAXLEN', size, entry, 't', string.format('%d', ms), 'f', numbered, 'h', header)
redis.call('PEXPIRE', KEYS[3], string.format('%d', math.ceil(tonumber(seconds) * 1000) + 1000))
return {seq, redis.call(ARGV[8], ARGV[1], header .. '\\n' .. numbered)}
"""

# KEYS: seq, frames, epoch. ARGV: first entry id wanted ('' for none), seconds kept, channel,
# marker ('' for none), a new "epoch secret" in case there is none, history ms, the publish
# command. Returns
# {"epoch secret", last, id, frame, ...}.
READ_SCRIPT = """
local epoch = redis.call('GET', KEYS[3])
if not epoch or not string.find(epoch, ' ') then
  epoch = ARGV[5]
  redis.call('SET', KEYS[3], epoch)
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], string.format('%d', ms * 1000))
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local result = {epoch, redis.call('GET', KEYS[1])}
if ARGV[1] ~= '' then
  local oldest = ms - tonumber(ARGV[2]) * 1000
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], ARGV[1], '+')) do
    local fields = entry[2]
    if tonumber(fields[2]) >= oldest then
      table.insert(result, entry[1])
      table.insert(result, fields[4])
    end
  end
end
if ARGV[4] ~= '' then
  redis.call(ARGV[7], ARGV[3], ARGV[4])
end
return result
"""


@dataclass(frozen=True, slots=True)
class ReplayKeys:
    """The Redis keys of one path's recovery (see the module's docstring).

    With ``tagged`` (Redis Cluster), every key of the path carries the hash tag ``{C:P}``, so that
    one script touches keys of one slot only, and each stream has a sharded channel of its own in
    that slot: ``{C:P}:recover``, ``{C:P}:epoch``, ``{C:P}:S:seq``, ``{C:P}:S:frames``, and the
    channel ``{C:P}:S``.
    """

    channel: str
    path: str
    tagged: bool = False

    @property
    def _prefix(self) -> str:
        return f"{{{self.channel}:{self.path}}}" if self.tagged else f"{self.channel}:replay:{self.path}"

    @property
    def conf(self) -> str:
        """The hash of the paths that recover, and their bounds."""
        return f"{self._prefix}:recover" if self.tagged else f"{self.channel}:recover"

    @property
    def epoch(self) -> str:
        """The path's epoch."""
        return f"{self._prefix}:epoch"

    def seq(self, stream: str) -> str:
        """The last number given in ``stream``."""
        return f"{self._prefix}:{stream}:seq"

    def frames(self, stream: str) -> str:
        """The numbered frames of ``stream``."""
        return f"{self._prefix}:{stream}:frames"

    def grant(self, grant: str) -> str:
        """The key telling that ``grant`` was spent or revoked."""
        return f"{self._prefix}:grant:{grant}"

    def pubsub(self, stream: str) -> str:
        """The sharded channel of ``stream`` (tagged keys only)."""
        return f"{self._prefix}:{stream}"


def conf_value(seconds: float, size: int) -> str:
    """The ``C:recover`` value for a path keeping ``seconds`` and ``size`` frames per stream."""
    return f"{seconds:g} {size}"


@dataclass(frozen=True, slots=True)
class SharedReplay:
    """What Redis holds of one stream when a connection joins it."""

    epoch: str
    #: The number of the stream's last frame (the position of a client that has seen them all).
    last: int
    #: The frames after the position asked for that are still kept, oldest first.
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    #: Signs the positions handed to clients; shared by every process through Redis.
    secret: bytes = b""

    @classmethod
    def parse(cls, reply: list[bytes]) -> SharedReplay:
        """Read what `READ_SCRIPT` returned."""
        epoch_secret, last, *rest = reply
        epoch, _, secret = text(epoch_secret).partition(" ")
        frames = [
            (int(entry.partition(b"-")[2]), frame) for entry, frame in zip(rest[::2], rest[1::2], strict=True)
        ]
        return cls(epoch, int(last), frames, secret.encode())


def new_epoch() -> str:
    """A value for the epoch key: a new epoch id and a new secret, separated by a space."""
    return f"{secrets.token_hex(6)} {secrets.token_hex(32)}"


def entry_number(entry_id: bytes | str) -> int:
    """The frame number of a stream entry id ``0-<number>``."""
    return int(text(entry_id).partition("-")[2])


def missed(replay: SharedReplay, seen: int) -> list[bytes] | None:
    """The frames after ``seen``, or None when some are no longer kept (the client must resync)."""
    if seen > replay.last:
        return None  # a position Redis never gave out: its data was lost
    frames = [frame for number, frame in replay.frames if number > seen]
    if len(frames) != replay.last - seen:
        return None
    return frames


def marker(token: str) -> bytes:
    """The message that tells the reading process its read is behind it on the channel."""
    return MARKER_PREFIX + codec.dumps(token) + b"}"
