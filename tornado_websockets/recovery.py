"""Missed-message recovery: numbered streams, signed positions and a bounded replay buffer per `WebSocket`.

With ``WebSocket(path, recover=60)`` every frame sent to the whole path (stream ``"*"``) or to a
room (stream = the room's name) carries ``"stream"`` and ``"seq"``. The server keeps the frames of
the last ``recover`` seconds (at most ``size`` per stream, at most ``total`` in all). A client
that comes back with the last ``seq`` it saw of each stream, and the token the server handed it
with that stream's position, gets exactly the frames it missed, in order, before any new one; if
they are no longer kept, if the token does not vouch for the position (a position from before the
client was there), or the server restarted (another ``epoch``), it gets a ``resync`` event instead
and reloads its state.

A token belongs to one *grant*: the positions one connection is handed in one stream, from when it
enters the stream until it leaves it. A grant recovers once: the connection that recovers with it
is given a grant of its own, and leaving the stream revokes the connection's grant, so a token kept
after ``left`` recovers nothing sent while its client was out. Spent and revoked grants are kept
for the path's ``recover`` seconds (`ReplayBuffer.spend`, or in Redis with shared recovery).

Pure bookkeeping: no Tornado, no Django.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tornado_websockets import binaryframes, codec

__all__ = [
    "BROADCAST_STREAM",
    "UNUSABLE",
    "Replay",
    "ReplayBuffer",
    "missed_since",
    "new_grant",
    "position_token",
    "read_positions",
    "token_allows",
    "token_grant",
    "with_sequence",
]

#: The stream of frames emitted to every client of a path.
BROADCAST_STREAM = "*"
#: What `read_positions` makes of a position no server hands out: its stream gets ``resync``.
UNUSABLE = -1
#: Positions are below this: Redis numbers frames in stream ids of 64 bits, the last one plus one.
_POSITION_LIMIT = 2**63


def read_positions(streams: dict[object, object]) -> dict[str, int]:
    """The position a returning client claims in each stream of its ``?recover=`` request.

    One that is no position (not an int, a bool, negative, beyond 2**63: a JSON number too large
    for 64 bits is read as a float) becomes `UNUSABLE`, so that its stream gets ``resync`` and a
    new position rather than being left out of the request.
    """
    return {str(name): _position(seq) for name, seq in streams.items()}


def _position(seq: object) -> int:
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < _POSITION_LIMIT:
        return UNUSABLE
    return seq


def missed_since(last: int, frames: Iterable[tuple[int, bytes]], seen: int) -> list[bytes] | None:
    """The frames numbered after ``seen`` (``frames``: what is kept of a stream whose last number is
    ``last``), or None when some are no longer kept or ``seen`` was never given out: resync."""
    if seen > last:
        return None
    missed = [frame for number, frame in frames if number > seen]
    return missed if len(missed) == last - seen else None


def with_sequence(frame: bytes, stream: str, seq: int) -> bytes:
    """Add ``"stream"`` and ``"seq"`` to an encoded frame without encoding it again."""
    if binaryframes.is_packed(frame):  # a MessagePack frame (it holds bytes)
        return binaryframes.with_sequence(frame, stream, seq)
    return frame[:-1] + b',"stream":' + codec.dumps(stream) + b',"seq":' + str(seq).encode() + b"}"


def _signature(secret: bytes, path: str, stream: str, epoch: str, seq: int, grant: str) -> str:
    message = codec.dumps([path, stream, epoch, seq, grant])
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()


def new_grant() -> str:
    """A new grant: the id shared by the tokens one connection is handed in one stream."""
    return secrets.token_urlsafe(9)


def position_token(secret: bytes, path: str, stream: str, epoch: str, seq: int, *, grant: str) -> str:
    """The token handed to a client with its position ``seq`` in ``stream``: ``"<seq>.<grant>.<signature>"``.

    Opaque to the client; only a server holding ``secret`` can make one, so a client can recover
    only from a position it was given (or a later one), and only once per ``grant`` (`new_grant`).
    """
    return f"{seq}.{grant}.{_signature(secret, path, stream, epoch, seq, grant)}"


def _parts(token: object) -> tuple[int, str, str] | None:
    """A token's position, grant and signature; None when it is not shaped as `position_token` makes them."""
    if not isinstance(token, str) or len(token) > 80:
        return None
    issued, _, rest = token.partition(".")
    grant, _, signature = rest.partition(".")
    # isdigit() alone takes "²" (and other non-ASCII digits) that int() refuses.
    if not (issued.isascii() and issued.isdigit()) or len(issued) > 20 or not grant or not signature:
        return None
    return int(issued), grant, signature


def token_grant(token: object) -> str | None:
    """The grant a token names (not checked: see `token_allows`), or None if it is no token."""
    parts = _parts(token)
    return None if parts is None else parts[1]


def token_allows(secret: bytes, path: str, stream: str, epoch: str, token: object, seq: int) -> bool:
    """Whether ``token`` was made by `position_token` for this stream and epoch, at ``seq`` or before.

    Whether its grant was spent or revoked is the caller's to check (`ReplayBuffer.spend`).
    """
    parts = _parts(token)
    if parts is None:
        return False
    issued, grant, signature = parts
    expected = _signature(secret, path, stream, epoch, issued, grant)
    return hmac.compare_digest(signature, expected) and seq >= issued


@dataclass(slots=True)
class Replay:
    """What a returning client needs for one stream: the missed frames, or a resync."""

    frames: list[bytes] = field(default_factory=list)
    resync: bool = False


@dataclass(slots=True)
class _Stream:
    last: int = 0
    touched: float = 0.0  # when its last frame was appended
    frames: collections.deque[tuple[int, float, bytes]] = field(default_factory=collections.deque)


class ReplayBuffer:
    """The numbered streams of one path in this process and their recent frames.

    Frames older than ``seconds`` go at the next `expire` (the `WebSocket` calls it on a timer),
    every stream counted; at most ``size`` frames are kept per stream and ``total`` in all (the
    oldest streams' frames go first). A stream that nobody is in any more is forgotten at once
    when it expires; a stream recreated later continues from the highest number this buffer ever
    gave, so that no position a client holds is ever given again to another frame.
    """

    def __init__(
        self,
        seconds: float,
        size: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        *,
        total: int = 100_000,
    ) -> None:
        if seconds <= 0 or size < 1 or total < 1:
            raise ValueError("recover should be a positive number of seconds, and size and total at least 1.")
        self.seconds = seconds
        self.size = size
        self.total = total
        self.clock = clock
        #: Changes when the process restarts: positions from another epoch cannot be replayed.
        self.epoch = uuid.uuid4().hex[:12]
        #: Signs the positions handed to clients (see `position_token`); lives as long as the epoch.
        self.secret = secrets.token_bytes(32)
        # Streams with frames, least recently appended first.
        self._streams: collections.OrderedDict[str, _Stream] = collections.OrderedDict()
        self._idle: dict[str, int] = {}  # streams kept without frames (someone is in them): last number
        self._floor = 0  # the highest number of a forgotten stream
        self._frames = 0  # frames kept, all streams together
        #: Grants spent or revoked -> when they may be forgotten, oldest first (one lifetime each).
        self._spent: collections.OrderedDict[str, float] = collections.OrderedDict()

    def __repr__(self) -> str:
        return (
            f"<ReplayBuffer {self.seconds}s x {self.size} streams={len(self._streams)} frames={self._frames}>"
        )

    def __len__(self) -> int:
        """How many frames are kept, all streams together."""
        return self._frames

    def append(self, stream: str, frame: bytes) -> bytes:
        """Number an encoded frame of ``stream``, keep it, and return it with its number."""
        state = self._streams.get(stream)
        if state is None:
            state = self._streams[stream] = _Stream(self._idle.pop(stream, self._floor))
        else:
            self._streams.move_to_end(stream)
        state.last += 1
        numbered = with_sequence(frame, stream, state.last)
        now = self.clock()
        state.touched = now
        state.frames.append((state.last, now, numbered))
        self._frames += 1
        self._prune(state, now)
        while self._frames > self.total:  # the least recently used streams give up their oldest frames
            oldest = next(iter(self._streams.values()))
            oldest.frames.popleft()
            self._frames -= 1
            if not oldest.frames:
                self._retire(next(iter(self._streams)), keep=True)
        return numbered

    def position(self, stream: str) -> int:
        """The number of the last frame of ``stream`` (0 before the first)."""
        state = self._streams.get(stream)
        if state is not None:
            return state.last
        return self._idle.get(stream, self._floor)

    def since(self, stream: str, seq: int) -> Replay:
        """The frames of ``stream`` after ``seq``, or a resync when some are no longer kept."""
        last = self.position(stream)
        if seq > last:
            return Replay(resync=True)  # a position this buffer never gave out
        if seq == last:
            return Replay()
        state = self._streams.get(stream)
        if state is not None:
            self._prune(state, self.clock())
        if state is None or not state.frames or state.frames[0][0] > seq + 1:
            return Replay(resync=True)
        return Replay([frame for number, _, frame in state.frames if number > seq])

    def spend(self, grant: str) -> bool:
        """Use ``grant`` to recover: True the first time, False once spent or revoked (remembered
        for ``seconds``, the time frames are kept; one entry per recovery or departure)."""
        now = self.clock()
        self._forget_spent(now)
        if grant in self._spent:
            return False
        self._spent[grant] = now + self.seconds
        return True

    def revoke(self, grant: str) -> None:
        """The connection holding ``grant`` left its stream: its tokens recover nothing any more."""
        now = self.clock()
        self._forget_spent(now)
        self._spent.pop(grant, None)
        self._spent[grant] = now + self.seconds

    def _forget_spent(self, now: float) -> None:
        spent = self._spent
        while spent and next(iter(spent.values())) <= now:
            spent.popitem(last=False)

    def expire(self, in_use: Callable[[str], bool]) -> None:
        """Drop the frames older than ``seconds`` of every stream; forget the streams not ``in_use``."""
        now = self.clock()
        for stream, state in tuple(self._streams.items()):
            if now - state.touched <= self.seconds:
                break  # the streams after it were appended to later
            self._retire(stream, keep=in_use(stream))
        for stream in [stream for stream in self._idle if not in_use(stream)]:
            self._floor = max(self._floor, self._idle.pop(stream))
        for state in self._streams.values():
            self._prune(state, now)

    def _retire(self, stream: str, keep: bool) -> None:
        state = self._streams.pop(stream)
        self._frames -= len(state.frames)
        if keep:
            self._idle[stream] = state.last
        else:
            self._floor = max(self._floor, state.last)

    def _prune(self, state: _Stream, now: float) -> None:
        frames = state.frames
        while frames and (len(frames) > self.size or now - frames[0][1] > self.seconds):
            frames.popleft()
            self._frames -= 1
