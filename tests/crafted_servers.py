"""Small Tornado servers sending crafted frames, for the tests of both clients (JavaScript and Python).

A gap in a stream's numbers, positions in 1,500 rooms: what a misbehaving or busy server sends, scripted.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import tornado.websocket


class Crafted(tornado.websocket.WebSocketHandler):
    """A server that sends what a test scripts, and records the URL of every connection."""

    urls: ClassVar[list[str]] = []

    def open(self, *args: str, **kwargs: str) -> None:
        type(self).urls.append(self.request.uri or "")
        recover = self.get_query_argument("recover", None)
        self.script(None if recover is None else json.loads(recover))

    def script(self, recover: dict[str, Any] | None) -> None:
        raise NotImplementedError

    def send(self, event: str, data: dict[str, Any], **extra: Any) -> None:
        self.write_message(json.dumps({"event": event, "data": data, **extra}))


class GapServer(Crafted):
    """Frames 1, 2, then 5 of stream "*"; a client coming back with its position gets 3 to 6."""

    urls: ClassVar[list[str]] = []

    def script(self, recover: dict[str, Any] | None) -> None:
        if recover is None:
            self.send("stream", {"stream": "*", "seq": 0, "epoch": "e1", "token": "token-0"})
            for seq in (1, 2, 5):
                self.send("said", {"n": seq}, stream="*", seq=seq)
            return
        for seq in range(recover["streams"]["*"] + 1, 7):
            self.send("said", {"n": seq}, stream="*", seq=seq)
        self.send("stream", {"stream": "*", "seq": 6, "epoch": "e1", "token": "token-6"})


ROOMS = [f"room-{n:04d}" for n in range(1500)]
LEFT = {"room-0005", "room-1498"}


def token(stream: str) -> str:
    """A token as long as a signed one (the client treats it as opaque)."""
    return f"{stream}.{'0123456789abcdef' * 2}"


class RoomsServer(Crafted):
    """Positions in 1,500 rooms, two of them left, then a frame of room-0000; drops the client once."""

    urls: ClassVar[list[str]] = []

    def script(self, recover: dict[str, Any] | None) -> None:
        if recover is None:
            self.send("stream", {"stream": "*", "seq": 0, "epoch": "e1", "token": token("*")})
            for room in ROOMS:
                self.send("stream", {"stream": room, "seq": 10, "epoch": "e1", "token": token(room)})
            for room in sorted(LEFT):
                self.send("stream", {"stream": room, "left": True})
            self.send("said", {"n": 11}, stream="room-0000", seq=11)
            self.close(1001, "Going away")  # not final: the client comes back with its positions
            return
        # Back in the newest room, in the room it moved last, and in the oldest (no longer in ?recover=).
        for room in ("room-1499", "room-0000", "room-0001"):
            self.send("stream", {"stream": room, "seq": 12, "epoch": "e1", "token": token(room)})
        self.send("done", {})
