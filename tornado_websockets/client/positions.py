"""Where the client stands in each stream, for recovery: sans-I/O, the JavaScript client's rules.

The server numbers every frame of a stream (the path ``"*"`` or a room) and tells the client its position
with an epoch and a token (``{"event": "stream", ...}``). `Positions` remembers them, notices a jump in the
numbers (a `Gap`), and builds the ``?recover=`` value of the next connection under `MAX_RECOVER_LENGTH`
characters, leaving out the streams that moved least recently (they get ``resync``).
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any

from tornado_websockets.client.options import MAX_RECOVER_LENGTH
from tornado_websockets.protocol import STREAM_EVENT, ServerFrame

__all__ = ["Gap", "Position", "Positions", "encode_component"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Position:
    """The last number of a stream this client got, and the token the server handed with it."""

    seq: int
    token: Any = None


@dataclass(frozen=True, slots=True)
class Gap:
    """Frames ``expected`` to ``received - 1`` of ``stream`` never arrived."""

    stream: str
    expected: int
    received: int


def encode_component(value: Any) -> str:
    """``encodeURIComponent(JSON.stringify(value))``, as the JavaScript client builds ``?recover=``."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return urllib.parse.quote(text, safe="-_.!~*'()")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Positions:
    """The epoch and, per stream, the position and token, least recently moved first."""

    def __init__(self) -> None:
        self.epoch: Any = None
        self.streams: dict[str, Position] = {}
        #: Streams left out of the last ``?recover=``: their next position from the server means "resync".
        self.unrecovered: set[str] = set()

    def __repr__(self) -> str:
        return f"<Positions epoch={self.epoch!r} streams={len(self.streams)}>"

    def track(self, frame: ServerFrame) -> Gap | None:
        """Remember what ``frame`` says of this client's place in a stream; the gap when numbers jumped."""
        data = frame.data
        if frame.event == STREAM_EVENT and isinstance(data, dict) and isinstance(data.get("stream"), str):
            stream = data["stream"]
            if data.get("left") is True:
                # The connection left the room: nothing more of it is due, nothing to recover.
                self.streams.pop(stream, None)
                self.unrecovered.discard(stream)
            elif _is_int(data.get("seq")):
                if "epoch" in data and data["epoch"] != self.epoch:
                    # Positions from another server process cannot be replayed: start over from this one.
                    self.epoch = data["epoch"]
                    self.streams.clear()
                    self.unrecovered.clear()
                known = self.streams.get(stream)
                # Without a token: the number of a frame this client was skipped for (it sent it).
                token = data.get("token", known.token if known else None)
                self.remember(stream, data["seq"], token)
            return None
        seq = frame.seq
        if not isinstance(frame.stream, str) or not isinstance(seq, int) or isinstance(seq, bool):
            return None
        known = self.streams.get(frame.stream)
        if known is not None and seq > known.seq + 1:
            return Gap(frame.stream, known.seq + 1, seq)
        if known is None or seq > known.seq:
            self.remember(frame.stream, seq, known.token if known else None)
        return None

    def remember(self, stream: str, seq: int, token: Any) -> None:
        """Set a stream's position; it becomes the most recently moved."""
        self.streams.pop(stream, None)
        self.streams[stream] = Position(seq, token)

    def accept(self, gap: Gap) -> None:
        """Take the jump as it is (no recovery): the stream goes on from the number received."""
        known = self.streams.get(gap.stream)
        self.remember(gap.stream, gap.received, known.token if known else None)

    def resyncs(self, frame: ServerFrame) -> str | None:
        """The stream to "resync" when ``frame`` is the position of a stream left out of ``?recover=``."""
        data = frame.data
        if frame.event != STREAM_EVENT or not isinstance(data, dict):
            return None
        stream = data.get("stream")
        if isinstance(stream, str) and stream in self.unrecovered:
            self.unrecovered.discard(stream)
            return stream
        return None

    def recover_parameter(self, limit: int = MAX_RECOVER_LENGTH) -> str | None:
        """The encoded ``?recover=`` value, at most ``limit`` characters; None with nothing to recover.

        ``{"epoch", "streams": {name: seq}, "tokens": {name: token}}``: past the limit the streams that moved
        least recently are forgotten, and get "resync" when the server next tells their position.
        """
        if self.epoch is None or not self.streams:
            return None
        room = limit - len(encode_component({"epoch": self.epoch, "streams": {}, "tokens": {}}))
        streams: dict[str, int] = {}
        tokens: dict[str, Any] = {}
        newest_first = list(reversed(self.streams.items()))
        kept = 0
        for stream, position in newest_first:
            name = encode_component(stream)
            # Each entry costs its name, its number or token, a colon and a comma, URL-encoded (%3A, %2C).
            cost = len(name) + len(str(position.seq)) + 6
            if position.token is not None:
                cost += len(name) + len(encode_component(position.token)) + 6
            if cost > room:
                break
            room -= cost
            streams[stream] = position.seq
            if position.token is not None:
                tokens[stream] = position.token
            kept += 1
        dropped = [stream for stream, _ in newest_first[kept:]]
        if dropped:
            logger.warning(
                "%d stream positions left out of the reconnection (over %d characters); they resync.",
                len(dropped),
                limit,
            )
            for stream in dropped:
                del self.streams[stream]
                self.unrecovered.add(stream)
        request: dict[str, Any] = {"epoch": self.epoch, "streams": streams}
        if tokens:
            request["tokens"] = tokens
        return encode_component(request)
