"""Shared recovery's old import path: see `tornado_websockets.redis.replay` (keys, scripts) and
`tornado_websockets.redis.recovery` (the broker's part)."""

from __future__ import annotations

from tornado_websockets.redis.replay import (
    EMIT_SCRIPT,
    HISTORY_SECONDS,
    MARKER_PREFIX,
    READ_SCRIPT,
    ReplayKeys,
    SharedReplay,
    conf_value,
    entry_number,
    marker,
    missed,
    new_epoch,
)

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
