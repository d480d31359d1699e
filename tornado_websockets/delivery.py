"""Accounting for frames the server did not deliver: counted by reason, logged at a bounded rate.

Peers drop frames silently; we never do. Every code path that gives up on a frame calls
`record_drop`, and `dropped` tells how many were lost and why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

__all__ = [
    "BACKLOG_BOUND",
    "BACKPLANE_MISSED",
    "BACKPLANE_UNREACHABLE",
    "CLIENT_LEFT",
    "CONNECTION_CLOSED",
    "ENCODING_ERROR",
    "SERVER_CLOSED",
    "SLOW_CONSUMER",
    "UNKNOWN_PATH",
    "UNKNOWN_ROOM",
    "WRITE_FAILED",
    "dropped",
    "record_drop",
    "reset_drops",
]

logger = logging.getLogger(__name__)

#: The connection was closed before the frame could be written.
CONNECTION_CLOSED = "connection_closed"
#: The socket failed while the frame was being written.
WRITE_FAILED = "write_failed"

#: The frame would have pushed the connection's unflushed backlog past its bound.
BACKLOG_BOUND = "backlog_bound"
#: A connection closed for not reading: each frame still in its backlog is lost with it.
SLOW_CONSUMER = "slow_consumer"
#: An emit arrived through the backplane for a path this process does not serve.
UNKNOWN_PATH = "unknown_path"
#: An emit to a room with no member, no recovery buffer, and no other process that could have one.
UNKNOWN_ROOM = "unknown_room"
#: The backplane could not be reached, so other processes did not get the frame.
BACKPLANE_UNREACHABLE = "backplane_unreachable"
#: Published while a server process was not subscribed (resubscribing, frozen, killed and not yet
#: expired): counted by the publisher, one per process that should have received the frame and
#: did not (PUBLISH tells how many did); for a path with recovery, counted instead by the process
#: that missed frames Redis no longer kept (its clients get ``resync``).
BACKPLANE_MISSED = "backplane_missed"
#: Inbound: a message the client sent, queued behind its running event function, when the client
#: left (its close frame, or the end of the TCP connection) before the function could take it.
CLIENT_LEFT = "client_left"
#: Inbound: a message the client sent after the server closed its connection (``socket.close``,
#: a limit): no event function sees it.
SERVER_CLOSED = "server_closed"
#: A reply the event function returned could not be encoded (the client gets an error instead).
ENCODING_ERROR = "encoding_error"

#: Seconds between two WARNING lines about drops; counts are exact whatever the rate.
LOG_INTERVAL = 10.0

_lock = threading.Lock()
_counts: Counter[tuple[str, str]] = Counter()
_unlogged: Counter[tuple[str, str]] = Counter()
_last_log = 0.0


def record_drop(reason: str, path: str, count: int = 1) -> None:
    """Count ``count`` frames for ``path`` that were not delivered because of ``reason``."""
    global _last_log
    with _lock:
        _counts[reason, path] += count
        _unlogged[reason, path] += count
        now = time.monotonic()
        if now - _last_log < LOG_INTERVAL:
            return
        _last_log = now
        summary = ", ".join(f"{n} on {p} ({r})" for (r, p), n in sorted(_unlogged.items()))
        _unlogged.clear()
    logger.warning("Frames not delivered: %s", summary)


def dropped() -> dict[tuple[str, str], int]:
    """A snapshot of the drop counts, keyed by ``(reason, path)``."""
    with _lock:
        return dict(_counts)


def reset_drops() -> None:
    """Forget every count (for tests)."""
    global _last_log
    with _lock:
        _counts.clear()
        _unlogged.clear()
        _last_log = 0.0
