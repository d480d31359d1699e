"""The backplane's plumbing methods that used to be public on ``socket``, kept for one release.

They moved onto the connection's collaborators: ``socket.catchup`` (`~tornado_websockets.catchup.CatchUp`)
and ``socket.outbox`` (`~tornado_websockets.outbox.Outbox`); ``socket.forget()`` is
``ws.connection_lost(socket)``. Each old name still works and warns (``DeprecationWarning``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from tornado_websockets.catchup import CatchUp
    from tornado_websockets.outbox import Outbox
    from tornado_websockets.websocket import WebSocket
    from tornado_websockets.websockethandler import WebSocketHandler

__all__ = ["DeprecatedPlumbing"]


class DeprecatedPlumbing:
    """Mixed into `~tornado_websockets.websockethandler.WebSocketHandler`: the old names, forwarded."""

    websocket: WebSocket
    catchup: CatchUp
    outbox: Outbox

    def write_numbered(self, stream: str, seq: int, frame: bytes) -> None:
        """Deprecated: ``socket.catchup.write_numbered``."""
        _deprecated("write_numbered", "catchup.write_numbered")
        self.catchup.write_numbered(stream, seq, frame)

    def write_position(self, stream: str, seq: int) -> None:
        """Deprecated: ``socket.catchup.write_position``."""
        _deprecated("write_position", "catchup.write_position")
        self.catchup.write_position(stream, seq)

    def write_resync(self, stream: str, position: int, epoch: str, secret: bytes) -> None:
        """Deprecated: ``socket.catchup.write_resync``."""
        _deprecated("write_resync", "catchup.write_resync")
        self.catchup.write_resync(stream, position, epoch, secret)

    def expect_numbered(self, stream: str) -> None:
        """Deprecated: ``socket.outbox.expect_numbered``."""
        _deprecated("expect_numbered", "outbox.expect_numbered")
        self.outbox.expect_numbered(stream)

    def awaits_numbered(self, stream: str) -> bool:
        """Deprecated: ``socket.outbox.awaits_numbered``."""
        _deprecated("awaits_numbered", "outbox.awaits_numbered")
        return self.outbox.awaits_numbered(stream)

    def fill_numbered(self, stream: str, write: Callable[[], None]) -> bool:
        """Deprecated: ``socket.outbox.fill_numbered``."""
        _deprecated("fill_numbered", "outbox.fill_numbered")
        return self.outbox.fill_numbered(stream, write)

    def forget(self) -> None:
        """Deprecated: ``ws.connection_lost(socket)``."""
        _deprecated("forget", "websocket.connection_lost(socket)")
        self.websocket.connection_lost(cast("WebSocketHandler", self))  # the class this mixes into


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"socket.{old}() is deprecated: use socket.{new}().", DeprecationWarning, 3)
