"""The client's tunables, checked once, and the sans-I/O rules that read them (close codes, backoff).

Same defaults and rules as the JavaScript client (client.mjs), in seconds rather than milliseconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tornado_websockets.client.errors import ClientUsageError

__all__ = [
    "MAX_RECOVER_LENGTH",
    "Liveness",
    "Reconnect",
    "is_final_close",
    "is_reconnect_now",
    "liveness_option",
    "reconnect_option",
    "whole_number",
]

#: Characters of the encoded ``?recover=`` value, at most: nginx's request line limit is 8 KB by default.
MAX_RECOVER_LENGTH = 4096


def is_final_close(code: int) -> bool:
    """4000-4099 and 1008: the server closed the connection for good, the client does not retry."""
    return 4000 <= code < 4100 or code == 1008


def is_reconnect_now(code: int) -> bool:
    """1012 (the server restarts) and 4100 (the session was renewed): reconnect without a backoff."""
    return code in (1012, 4100)


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Backoff of the reconnections, in seconds: ``initial * factor ** attempt``, at most ``max``, minus a
    random share (``jitter``) so that clients dropped together do not come back together. The attempt count
    starts over once a connection stayed open ``stable`` seconds."""

    initial: float = 0.5
    max: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    stable: float = 5.0

    def __post_init__(self) -> None:
        if not (
            0 <= self.initial <= self.max and self.factor >= 1 and 0 <= self.jitter <= 1 and self.stable >= 0
        ):
            raise ClientUsageError(
                "Reconnect needs 0 <= initial <= max (seconds), factor >= 1, 0 <= jitter <= 1 and "
                f"stable >= 0 (seconds), not {self!r}."
            )

    def delay(self, attempt: int, rand: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first)."""
        ceiling = min(self.max, self.initial * self.factor**attempt)
        share = random.random() if rand is None else rand  # spreading retries: no secret
        return ceiling * (1 - self.jitter * share)


@dataclass(frozen=True, slots=True)
class Liveness:
    """After ``idle`` seconds without any frame from the server, send a ``ping``; when no frame at all comes
    within ``timeout`` seconds, give the connection up and reconnect."""

    idle: float = 20.0
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not (self.idle > 0 and self.timeout > 0):
            raise ClientUsageError(f"Liveness needs idle > 0 and timeout > 0 (seconds), not {self!r}.")


def reconnect_option(value: Reconnect | bool) -> Reconnect | None:
    """``True`` (the defaults), ``False`` (never) or a `Reconnect`."""
    if value is True:
        return Reconnect()
    if value is False:
        return None
    if isinstance(value, Reconnect):
        return value
    raise ClientUsageError(f"reconnect should be True, False or a Reconnect(...), not {value!r}.")


def liveness_option(value: Liveness | bool) -> Liveness | None:
    """``True`` (the defaults), ``False`` (no probe) or a `Liveness`."""
    if value is True:
        return Liveness()
    if value is False:
        return None
    if isinstance(value, Liveness):
        return value
    raise ClientUsageError(f"liveness should be True, False or a Liveness(...), not {value!r}.")


def whole_number(name: str, value: object, minimum: int) -> int:
    """``value`` when it is an int of at least ``minimum``; else a `ClientUsageError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ClientUsageError(f"{name} should be a whole number ({minimum} or more), not {value!r}.")
    return value
