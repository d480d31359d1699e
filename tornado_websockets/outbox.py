"""Outbox: a connection's write path, its backlog bound, and the order of frames numbered elsewhere.

Every frame to one client goes through its `Outbox` on the connection's loop: counted, bounded
(a client whose unflushed backlog would pass ``max_backlog`` is closed, so it cannot grow the
server's memory) and kept in the order the server made it. A frame this process sent to the
backplane to be numbered (shared recovery) comes back later than a ``socket.emit`` made after
it; the writes after it wait behind it (`expect_numbered` / `fill_numbered`), for at most
`ORDER_TIMEOUT`.

The outbox does no I/O of its own: it is given the connection's ``send`` (write one encoded
frame, returning the write's future), ``backlog`` and ``close``, so it is tested without a socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import tornado.iostream
import tornado.websocket

from tornado_websockets import delivery
from tornado_websockets.limits import BACKLOG_CLOSE_CODE

if TYPE_CHECKING:
    from tornado_websockets import pathmetrics

__all__ = ["ORDER_TIMEOUT", "Outbox"]

logger = logging.getLogger(__name__)

#: Seconds a connection's writes wait behind a frame sent to the backplane to be numbered.
ORDER_TIMEOUT = 2.0

#: What writes one frame and returns the write's future, or None when the socket took all of it
#: at once (raises once the connection is closed).
Send = Callable[[bytes], "asyncio.Future[None] | None"]
_CLOSED = (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError)


class Outbox:
    """The frames on their way to one client (see the module); every method runs on its loop."""

    __slots__ = (
        "_backlog",
        "_close",
        "_is_closed",
        "_order",
        "_order_timer",
        "_owner",
        "_send",
        "_too_slow",
        "_unordered",
        "loop",
        "max_backlog",
        "metrics",
        "path",
    )

    def __init__(
        self,
        *,
        owner: object,
        loop: asyncio.AbstractEventLoop,
        path: str,
        metrics: pathmetrics.PathMetrics,
        max_backlog: int,
        send: Send,
        backlog: Callable[[], int],
        is_closed: Callable[[], bool],
        close: Callable[[int, str], None],
    ) -> None:
        self._owner = owner  # named in the logs
        self.loop = loop
        self.path = path
        self.metrics = metrics
        self.max_backlog = max_backlog
        self._send = send
        self._backlog = backlog
        self._is_closed = is_closed
        self._close = close
        self._too_slow = False  # closed for not reading: what its backlog holds counts as slow
        #: Writes held behind frames sent to be numbered (see `expect_numbered`).
        self._order: collections.deque[_Entry] | None = None
        self._unordered = False
        self._order_timer: asyncio.TimerHandle | None = None

    @property
    def backlog(self) -> int:
        """Bytes written to the client that its socket has not taken yet."""
        return self._backlog()

    def write(self, frame: bytes) -> None:
        """Write an encoded frame (in its place behind numbered frames awaited); a frame that
        cannot be written is a counted drop. One frame to an empty backlog is always taken."""
        if self._order is not None and not self._unordered:
            self._order.append(_Entry(None, functools.partial(self.write, frame)))
            return
        path = self.path
        if self._is_closed():
            delivery.record_drop(delivery.CONNECTION_CLOSED, path)
            return
        backlog = self._backlog()
        if backlog and backlog + len(frame) > self.max_backlog:
            delivery.record_drop(delivery.BACKLOG_BOUND, path)
            self._too_slow = True
            logger.warning("Closing %r: %d bytes not read by the client", self._owner, backlog)
            # Tornado aborts the stream if the close handshake does not finish within its
            # close timeout, so the memory held stays bounded by max_backlog meanwhile.
            self._close(BACKLOG_CLOSE_CODE, "Client too slow")
            return
        try:
            future = self._send(frame)
        except _CLOSED:
            delivery.record_drop(delivery.CONNECTION_CLOSED, path)
            return
        metrics = self.metrics
        metrics.frames_out += 1
        metrics.bytes_out += len(frame)
        if future is None:  # the socket took it at once, as it does for a client that keeps up
            return
        if future.done():
            self._written(future)
        else:
            future.add_done_callback(self._written)

    def use(self, send: Send, backlog: Callable[[], int], is_closed: Callable[[], bool]) -> None:
        """Write through ``send``, measure the backlog with ``backlog`` and tell a closed
        connection with ``is_closed`` from now on (the connection's transport changed:
        `tornado_websockets.ownconnection`)."""
        self._send = send
        self._backlog = backlog
        self._is_closed = is_closed

    def _written(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            reason = delivery.SLOW_CONSUMER if self._too_slow else delivery.WRITE_FAILED
            delivery.record_drop(reason, self.path)

    @contextlib.contextmanager
    def ahead_of_order(self) -> Iterator[None]:
        """Writes made inside go out at once, ahead of those waiting for a numbered frame."""
        unordered, self._unordered = self._unordered, True
        try:
            yield
        finally:
            self._unordered = unordered

    # One order of delivery, whatever the broker ---------------------------------------------------

    def expect_numbered(self, stream: str) -> None:
        """A frame for this client went to the backplane to be numbered.

        Until it comes back (`fill_numbered`), or `ORDER_TIMEOUT` passes, what is written waits
        behind it: the client sees ``ws.emit`` then ``socket.emit`` then the reply in that order,
        as it does with the in-process broker.
        """
        if self._order is None:
            self._order = collections.deque()
            self._order_timer = self.loop.call_later(ORDER_TIMEOUT, self._give_up_order)
        self._order.append(_Entry(stream, None))

    def awaits_numbered(self, stream: str) -> bool:
        """Whether a frame of ``stream`` sent to the backplane to be numbered is still awaited."""
        order = self._order
        return order is not None and any(entry.stream == stream and entry.write is None for entry in order)

    def fill_numbered(self, stream: str, write: Callable[[], None]) -> bool:
        """Run ``write`` (a numbered frame this process sent) in its place in the order, and what
        waited behind it; False: no frame of ``stream`` is awaited (the caller writes it now)."""
        if self._order is None:
            return False
        for entry in self._order:
            if entry.stream == stream and entry.write is None:
                entry.write = write
                self._flush_order()
                return True
        return False

    def _flush_order(self) -> None:
        order = self._order
        assert order is not None
        with self.ahead_of_order():
            while order and (write := order[0].write) is not None:
                order.popleft()
                write()
        if not order:
            self._order = None
            if self._order_timer is not None:
                self._order_timer.cancel()
                self._order_timer = None

    def _give_up_order(self) -> None:
        """A numbered frame never came back (the backplane lost it): write what waited behind it."""
        self._order_timer = None
        order, self._order = self._order, None
        if not order:
            return
        missing = sum(1 for entry in order if entry.write is None)
        logger.warning("%r: %d frame(s) never came back numbered; writing what waited", self._owner, missing)
        with self.ahead_of_order():
            for entry in order:
                if entry.write is not None:
                    entry.write()


class _Entry:
    """One place in the order: a frame of ``stream`` still awaited (``write`` None), or a write."""

    __slots__ = ("stream", "write")

    def __init__(self, stream: str | None, write: Callable[[], None] | None) -> None:
        self.stream = stream
        self.write = write
