"""What waits: frames for the socket to open (`Outbox`, bounded) and requests for their reply (`Requests`).

Pure bookkeeping, no I/O: the connection writes and reads, these remember.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tornado_websockets.client.errors import ConnectionLost, RequestFailed
from tornado_websockets.protocol import ServerFrame

__all__ = ["Outbox", "Queued", "Request", "Requests"]


@dataclass(frozen=True, slots=True)
class Queued:
    """A frame to send: its message, its payload (re-encoded if it holds bytes), its request id."""

    message: str | bytes
    payload: dict[str, Any]
    id: int | None


@dataclass(eq=False, slots=True)
class Request:
    """A request waiting for its ``ack``; ``sent`` once written to a socket."""

    event: str
    future: asyncio.Future[Any]
    sent: bool = False


class Outbox:
    """Frames emitted while disconnected, oldest first, at most ``size`` of them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._frames: collections.deque[Queued] = collections.deque()

    def __repr__(self) -> str:
        return f"<Outbox {len(self._frames)}/{self.size}>"

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, queued: Queued) -> Queued | None:
        """Keep ``queued``; the frame dropped to make room (the oldest, or ``queued`` itself with size 0)."""
        if self.size == 0:
            return queued
        dropped = self._frames.popleft() if len(self._frames) >= self.size else None
        self._frames.append(queued)
        return dropped

    def first(self) -> Queued | None:
        """The oldest frame, still kept (until `pop`): it is removed only once written."""
        return self._frames[0] if self._frames else None

    def pop(self) -> None:
        """Forget the oldest frame (written)."""
        self._frames.popleft()

    def discard(self, frame_id: int) -> None:
        """Forget the frame of request ``frame_id`` (it timed out before it could be sent)."""
        self._frames = collections.deque(queued for queued in self._frames if queued.id != frame_id)


class Requests:
    """Requests by id, until their reply, their timeout, or the connection that carried them closes."""

    def __init__(self) -> None:
        self._by_id: dict[int, Request] = {}

    def __repr__(self) -> str:
        return f"<Requests {len(self._by_id)}>"

    def __contains__(self, frame_id: object) -> bool:
        return frame_id in self._by_id

    def open(self, frame_id: int, event: str) -> Request:
        """A new request, waiting."""
        request = Request(event, asyncio.get_running_loop().create_future())
        self._by_id[frame_id] = request
        return request

    def forget(self, frame_id: int) -> None:
        self._by_id.pop(frame_id, None)

    def mark_sent(self, frame_id: int | None) -> None:
        """The request's frame was written: its reply can come on this connection only."""
        request = None if frame_id is None else self._by_id.get(frame_id)
        if request is not None:
            request.sent = True

    def settle(self, frame: ServerFrame) -> None:
        """Resolve a request with its ``ack``: the reply, or `RequestFailed` with the server's message."""
        request = self._by_id.pop(frame.id) if isinstance(frame.id, int) else None
        if request is None or request.future.done():
            return
        if frame.error is not None:
            error = frame.error if isinstance(frame.error, dict) else {}
            request.future.set_exception(RequestFailed(str(error.get("message")), error.get("event")))
        else:
            request.future.set_result(frame.data)

    def fail(self, frame_id: int | None, error: Callable[[Request], Exception]) -> None:
        """Fail request ``frame_id`` (if it still waits) with ``error(request)``."""
        request = None if frame_id is None else self._by_id.pop(frame_id, None)
        if request is not None and not request.future.done():
            request.future.set_exception(error(request))

    def fail_sent(self) -> None:
        """The connection closed: the requests it carried can get no reply; queued ones wait on."""
        for frame_id, request in list(self._by_id.items()):
            if request.sent:
                self.fail(frame_id, lambda failed: ConnectionLost(failed.event))

    def fail_all(self) -> None:
        """The client closed for good: every request fails."""
        for frame_id in list(self._by_id):
            self.fail(frame_id, lambda failed: ConnectionLost(failed.event))
