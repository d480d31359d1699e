"""An `Outbox` over no socket, for the tests of the connection's collaborators (catch-up, fan-out)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tornado_websockets.outbox import Outbox
from tornado_websockets.pathmetrics import PathMetrics

__all__ = ["recording_outbox"]


def recording_outbox(path: str, record: Callable[[bytes], Any]) -> Outbox:
    """An outbox on the running loop whose every frame written goes to ``record``, at once."""
    loop = asyncio.get_running_loop()

    def send(frame: bytes) -> asyncio.Future[None]:
        record(frame)
        future = loop.create_future()
        future.set_result(None)
        return future

    return Outbox(
        owner="test",
        loop=loop,
        path=path,
        metrics=PathMetrics(),
        max_backlog=1 << 20,
        send=send,
        backlog=lambda: 0,
        is_closed=lambda: False,
        close=lambda code, reason: None,
    )
