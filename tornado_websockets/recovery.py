"""Missed-message recovery: numbered streams and a bounded replay buffer per `WebSocket`.

With ``WebSocket(path, recover=60)`` every frame sent to the whole path (stream ``"*"``) or to a
room (stream = the room's name) carries ``"stream"`` and ``"seq"``. The server keeps the frames of
the last ``recover`` seconds (at most ``size`` per stream). A client that comes back with the
last ``seq`` it saw of each stream gets exactly the frames it missed, in order, before any new
one; if they are no longer buffered (or the server restarted: another ``epoch``) it gets a
``resync`` event instead and reloads its state.

Pure bookkeeping: no Tornado, no Django.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tornado_websockets import codec

__all__ = ["BROADCAST_STREAM", "Replay", "ReplayBuffer", "with_sequence"]

#: The stream of frames emitted to every client of a path.
BROADCAST_STREAM = "*"


def with_sequence(frame: bytes, stream: str, seq: int) -> bytes:
    """Add ``"stream"`` and ``"seq"`` to an encoded frame without encoding it again."""
    return frame[:-1] + b',"stream":' + codec.dumps(stream) + b',"seq":' + str(seq).encode() + b"}"


@dataclass(slots=True)
class Replay:
    """What a returning client needs for one stream: the missed frames, or a resync."""

    frames: list[bytes] = field(default_factory=list)
    resync: bool = False


@dataclass(slots=True)
class _Stream:
    last: int = 0
    frames: deque[tuple[int, float, bytes]] = field(default_factory=deque)


class ReplayBuffer:
    """The numbered streams of one path in this process and their recent frames."""

    def __init__(self, seconds: float, size: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        if seconds <= 0 or size < 1:
            raise ValueError("recover should be a positive number of seconds, and size at least 1.")
        self.seconds = seconds
        self.size = size
        self.clock = clock
        #: Changes when the process restarts: positions from another epoch cannot be replayed.
        self.epoch = uuid.uuid4().hex[:12]
        self._streams: dict[str, _Stream] = {}

    def __repr__(self) -> str:
        return f"<ReplayBuffer {self.seconds}s x {self.size} streams={len(self._streams)}>"

    def append(self, stream: str, frame: bytes) -> bytes:
        """Number an encoded frame of ``stream``, keep it, and return it with its number."""
        state = self._streams.setdefault(stream, _Stream())
        state.last += 1
        numbered = with_sequence(frame, stream, state.last)
        now = self.clock()
        state.frames.append((state.last, now, numbered))
        self._prune(state, now)
        return numbered

    def position(self, stream: str) -> int:
        """The number of the last frame of ``stream`` (0 before the first)."""
        state = self._streams.get(stream)
        return 0 if state is None else state.last

    def since(self, stream: str, seq: int) -> Replay:
        """The frames of ``stream`` after ``seq``, or a resync when some are no longer kept."""
        state = self._streams.get(stream)
        last = 0 if state is None else state.last
        if seq > last:
            return Replay(resync=True)  # a position this buffer never gave out
        if seq == last or state is None:
            return Replay()
        self._prune(state, self.clock())
        if not state.frames or state.frames[0][0] > seq + 1:
            return Replay(resync=True)
        return Replay([frame for number, _, frame in state.frames if number > seq])

    def _prune(self, state: _Stream, now: float) -> None:
        frames = state.frames
        while frames and (len(frames) > self.size or now - frames[0][1] > self.seconds):
            frames.popleft()
