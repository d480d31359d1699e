"""Shared presence's old import path: see `tornado_websockets.redis.presence` and
`tornado_websockets.redis.processes`."""

from __future__ import annotations

from tornado_websockets.redis.presence import PresenceKeys, SharedPresence
from tornado_websockets.redis.processes import ProcessDirectory

__all__ = ["PresenceKeys", "ProcessDirectory", "SharedPresence"]
