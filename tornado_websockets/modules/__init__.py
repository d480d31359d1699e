"""Reusable server-side modules bound to a `WebSocket` with ``ws.bind(module)``."""

from tornado_websockets.modules.module import Module
from tornado_websockets.modules.progressbar import ProgressBar

__all__ = ["Module", "ProgressBar"]
