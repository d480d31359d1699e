"""Inbound data messages, queued in order behind the event function that runs.

Both frame readers (the bulk one, `tornado_websockets.framereader`, and Tornado's own) hand each
complete message to `QueuingProtocol`, which passes it to ``on_message`` at once when no function
of the connection runs, and otherwise queues it: the reader goes on reading, so pings, pongs and
the client's close are handled while a function runs. A connection's functions still run one at a
time, in the order their messages came.

The queue holds at most `INBOX_MESSAGES` messages or `INBOX_BYTES` (one message is always
taken); past that the reader stops reading the socket until the running function is done with
one, so TCP pushes back on a client that sends faster than its functions run. When the client
leaves, what is still queued is dropped and counted (`~tornado_websockets.delivery.CLIENT_LEFT`).
"""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.websocket

from tornado_websockets import delivery

__all__ = ["INBOX_BYTES", "INBOX_MESSAGES", "QueuingProtocol"]

#: Data messages held while an event function of the connection runs.
INBOX_MESSAGES = 100
#: Bytes of data messages held while an event function runs.
INBOX_BYTES = 1024 * 1024


class QueuingProtocol(tornado.websocket.WebSocketProtocol13):
    """``WebSocketProtocol13`` whose data messages wait in a bounded queue (see the module)."""

    def __init__(
        self,
        handler: Any,
        mask_outgoing: bool,
        params: tornado.websocket._WebSocketParams,
    ) -> None:
        super().__init__(handler, mask_outgoing, params)
        # Data messages waiting for the running event function, and their size in bytes.
        self._inbox: collections.deque[str | bytes] = collections.deque()
        self._inbox_bytes = 0
        # The running function's task or future; None when none runs.
        self._running: asyncio.Future[Any] | None = None
        # Set when the queue has room again, while the reader waits for it.
        self._room: asyncio.Event | None = None

    def _run_callback(
        self, callback: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> asyncio.Future[Any] | None:
        """Tornado's reader hands each message over here: queue it (the rest goes to Tornado).

        Returns what the reader awaits before reading on: the wait for room in a full queue.
        """
        if callback != self.handler.on_message:
            return super()._run_callback(callback, *args, **kwargs)
        self._deliver(args[0])
        return asyncio.ensure_future(self._wait_for_room()) if self._inbox_full() else None

    def _deliver(self, message: str | bytes) -> None:
        if self._running is None and not self._inbox:
            self._start(message)
            return
        self._inbox.append(message)
        self._inbox_bytes += len(message)

    def _start(self, message: str | bytes) -> None:
        """Hand ``message`` over; what finishes at once lets the next queued one go at once too."""
        handled = self._call(message)
        while handled is None:
            if not self._inbox or self._client_gone():
                self._running = None
                self._wake()
                return
            handled = self._call(self._take())
        # No task of our own per message: a callback on the function's task (or future) chains.
        running = asyncio.ensure_future(handled)
        self._running = running
        running.add_done_callback(self._function_done)

    def _take(self) -> str | bytes:
        message = self._inbox.popleft()
        self._inbox_bytes -= len(message)
        self._wake()
        return message

    def _function_done(self, running: asyncio.Future[Any]) -> None:
        self._running = None
        # A cancelled task is its own business (cancel_on_close): the next message goes on.
        error = None if running.cancelled() else running.exception()
        if error is not None:  # a coroutine returned by a subclass's on_message: as Tornado does
            self.handler.log_exception(type(error), error, error.__traceback__)
            self._abort()
        if self._inbox and not self._client_gone():
            self._start(self._take())
        else:
            self._wake()

    def _call(self, message: str | bytes) -> Awaitable[Any] | None:
        """``on_message``; an exception it raises aborts the connection, as with Tornado."""
        try:
            return self.handler.on_message(message)
        except Exception:
            self.handler.log_exception(*sys.exc_info())
            self._abort()
            return None

    def _wake(self) -> None:
        if self._room is not None:
            self._room.set()

    def _inbox_full(self) -> bool:
        return bool(self._inbox) and (len(self._inbox) >= INBOX_MESSAGES or self._inbox_bytes >= INBOX_BYTES)

    async def _wait_for_room(self) -> None:
        """Stop reading (TCP pushes back) until the running function took a queued message."""
        while self._inbox_full() and self._running is not None:
            self._room = asyncio.Event()
            await self._room.wait()
        self._room = None

    async def _idle(self) -> None:
        """Wait until the running function and the queued messages are done."""
        while self._running is not None:
            await asyncio.wait([self._running])

    def _client_gone(self) -> bool:
        return self.client_terminated or self.stream is None or self.stream.closed()

    def _drop_inbox(self) -> None:
        """The client left: what it sent and no function took yet is dropped, and counted."""
        if self._inbox:
            path = getattr(getattr(self.handler, "websocket", None), "path", "")
            delivery.record_drop(delivery.CLIENT_LEFT, path, len(self._inbox))
            self._inbox.clear()
            self._inbox_bytes = 0

    def on_connection_close(self) -> None:
        self._drop_inbox()
        super().on_connection_close()
