"""Per-connection limits: message size, keepalive, outbound backlog and inbound rate.

Each has a default suited to the open internet; override them per path
(``WebSocket(path, limits=Limits(...))``) or for the whole process (``TornadoWrapper.limits``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = [
    "BACKLOG_CLOSE_CODE",
    "FINAL_CLOSE_CODES",
    "RATE_CLOSE_CODE",
    "SESSION_ENDED_CLOSE_CODE",
    "Limits",
    "RateLimiter",
]

#: Close code for a client whose outbound backlog passed ``max_backlog``: 1013, "try again later",
#: so a client reconnects (with backoff) instead of giving up.
BACKLOG_CLOSE_CODE = 1013
#: Close code for a client that kept sending faster than ``max_rate`` after its warning.
RATE_CLOSE_CODE = 1008
#: Close code for the sockets of a Django session that ended (logout, or a password change that
#: invalidates the session): reason "Signed out". Final: the client does not reconnect.
SESSION_ENDED_CLOSE_CODE = 4001
#: Close codes after which the JavaScript client does not reconnect: 4000-4099 and 1008.
FINAL_CLOSE_CODES = frozenset({*range(4000, 4100), RATE_CLOSE_CODE})


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may do before the server protects everyone else from it.

    :param max_message_size: bytes in one inbound message; a larger one closes the connection with 1009.
    :param ping_interval: seconds between keepalive pings; ``None`` or 0 turns keepalive off.
    :param ping_timeout: seconds to wait for the pong before closing (at most ``ping_interval``);
        pongs are read while an event function runs, so a long function never trips it.
    :param max_backlog: bytes written to a connection but not yet flushed to its socket; a client
        that stops reading is closed with `BACKLOG_CLOSE_CODE` once it passes this bound.
    :param max_rate: inbound events per second (``None``: no limit). Above it a frame is refused
        with a ``warning``; a client that keeps going past ``burst`` more is closed with
        `RATE_CLOSE_CODE`.
    :param burst: events allowed at once above the steady rate.
    """

    max_message_size: int = 1024 * 1024
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    max_backlog: int = 4 * 1024 * 1024
    max_rate: float | None = None
    burst: int = 20

    def __post_init__(self) -> None:
        if self.max_message_size <= 0 or self.max_backlog <= 0 or self.burst < 1:
            raise ValueError("max_message_size, max_backlog and burst should be positive.")
        if self.max_rate is not None and self.max_rate <= 0:
            raise ValueError("max_rate should be positive, or None for no limit.")


class RateLimiter:
    """A token bucket: ``max_rate`` tokens a second, holding at most ``burst``."""

    __slots__ = ("_last", "_tokens", "burst", "rate", "refused")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()
        #: Frames refused since the last one accepted.
        self.refused = 0

    def allow(self) -> bool:
        """Take a token if there is one; counts the refusals in a row otherwise."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            self.refused = 0
            return True
        self.refused += 1
        return False
