"""Read a connection's frames in bulk: Tornado's WebSocket protocol with `FrameParser` as its reader.

Tornado's ``WebSocketProtocol13`` awaits the stream four times per frame (header, length, mask,
payload), each a future and a trip through the ``IOStream``. `BulkFrameProtocol` reads whatever
the socket holds, up to `READ_SIZE` at once, and parses every complete frame of it in one pass
(`tornado_websockets.frames`). Everything else is Tornado's: the handshake, writing, keepalive
pings, closing. Messages reach ``on_message`` exactly as Tornado hands them over: text as ``str``,
binary as ``bytes``, one at a time; an awaitable returned by ``on_message`` is awaited before the
next message is handed over.

Where it differs from Tornado's reader, on purpose:

- While an event function runs, the connection still hears its client: pings are answered and
  pongs recorded at once, a close frame or the end of the TCP connection closes it at once (the
  ``close`` event function runs; what was queued is dropped and counted as
  `~tornado_websockets.delivery.CLIENT_LEFT`). Data messages wait in a bounded queue, in order
  (`QueuingProtocol`); beyond its bound the socket is not read until the queue has
  room, so TCP pushes back on a client that sends faster than its functions run.
- A protocol error is answered with a close frame, 1002 (or 1007 for text that is not UTF-8)
  where Tornado drops the TCP connection without one; a message over ``max_message_size`` gets
  1009, as with Tornado.
- After such a close frame, what the client still sends is read and dropped, however much it is
  (reading to discard costs no memory), until the client's own close frame or TCP close, or for
  at most `DRAIN_SECONDS`: the close frame reaches a client that is still writing instead of
  being lost in a TCP reset.

Where permessage-deflate will be negotiated, Tornado's own reader runs. Set the Tornado application setting
`FRAME_READER_SETTING` to False to use Tornado's reader for every connection.

Every private name of Tornado the library uses is listed in `TORNADO_PRIVATE_NAMES` (the test of
this module checks them against the installed Tornado); ``_send_pong`` (Tornado 6.6) is used where
it exists (`TORNADO_OPTIONAL_NAMES`). The connection reaches them only through this module (and
the protocol it builds (`connection_protocol`), the fast write (`write_text`) and the count of
bytes not yet taken by the socket (`write_backlog`).

Inbound data messages wait in a bounded queue, in order, behind the event function that runs
(`QueuingProtocol`, under both readers): it passes each complete message to ``on_message`` at
once when no function of the connection runs, and otherwise queues it, so the reader goes on
reading. The queue holds at most `INBOX_MESSAGES` messages or `INBOX_BYTES` (one message is
always taken); past that the reader stops reading the socket until the running function is done
with one. When the client leaves, what is still queued is dropped and counted
(`~tornado_websockets.delivery.CLIENT_LEFT`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.iostream
import tornado.websocket
from tornado.iostream import StreamClosedError

from tornado_websockets import binaryframes, delivery
from tornado_websockets.frames import Close, Failure, FrameParser, Ping, Pong

__all__ = [
    "DRAIN_SECONDS",
    "FRAME_READER_SETTING",
    "INBOX_BYTES",
    "INBOX_MESSAGES",
    "READ_SIZE",
    "RECV_SIZE",
    "TORNADO_OPTIONAL_NAMES",
    "TORNADO_PRIVATE_NAMES",
    "BulkFrameProtocol",
    "DrainingProtocol13",
    "QueuingProtocol",
    "connection_protocol",
    "frame_protocol",
    "write_backlog",
    "write_text",
]

logger = logging.getLogger(__name__)

#: Tornado application setting: False reads frames with Tornado's own reader (default True).
FRAME_READER_SETTING = "tornado_websockets_frame_reader"
#: Bytes asked of the stream at once (it returns what it has, up to this).
READ_SIZE = 64 * 1024
#: Bytes the stream asks of the socket per call: it allocates and zeroes a buffer this large for
#: every call, which at Tornado's 64 KiB costs more than parsing a small frame (1.8 µs, not 0.3).
RECV_SIZE = 16 * 1024
#: Seconds a connection closed for a protocol error or a too large message is still read (and
#: what it sends dropped) waiting for the client's close; Tornado's own close timeout is 5 s.
DRAIN_SECONDS = 5.0
#: Every private name of Tornado the library uses, by what has it: ``tornado.websocket`` the module,
#: ``protocol`` a server connection's ``WebSocketProtocol13``, ``stream`` its ``IOStream``.
#: tests/test_framereader.py checks each against the installed Tornado (6.5 and 6.6 have them all).
#: `tornado_websockets.ownconnection` uses those of the stream's read buffer and state, to take the
#: socket from it, and ``_wire_bytes_out``.
TORNADO_PRIVATE_NAMES: dict[str, tuple[str, ...]] = {
    "tornado.websocket": ("_WebSocketParams",),
    "protocol": (
        "_abort",
        "_compressor",
        "_decompressor",
        "_message_bytes_in",
        "_message_bytes_out",
        "_received_pong",
        "_receive_frame_loop",
        "_run_callback",
        "_wire_bytes_in",
        "_wire_bytes_out",
        "_write_frame",
    ),
    "stream": (
        "_read_buffer",
        "_read_buffer_size",
        "_state",
        "_total_write_done_index",
        "_total_write_index",
        "_user_read_buffer",
    ),
}
#: Private names used where the installed Tornado has them: ``_send_pong`` (6.6) answers pings
#: with at most one pong outstanding; without it, pongs are written as Tornado 6.5 writes them.
TORNADO_OPTIONAL_NAMES: dict[str, tuple[str, ...]] = {"protocol": ("_send_pong",)}
# Let other connections run after this much work, counting each message as 1 KiB: Tornado's
# own fairness rule (its _YIELD_THRESHOLD and _FRAME_YIELD_COST).
_YIELD_AFTER = 256 * 1024
_MESSAGE_COST = 1024
_JSON_OPEN = 0x7B  # an encoded JSON frame starts with "{"; anything else is MessagePack


#: Data messages held while an event function of the connection runs.
INBOX_MESSAGES = 100
#: Bytes of data messages held while an event function runs.
INBOX_BYTES = 1024 * 1024


class _NoMessages(collections.deque[str | bytes]):
    """The inbox of every connection that has not queued a message yet: shared, always empty
    (a deque is 600+ bytes, and most connections never queue one)."""

    def append(self, message: str | bytes) -> None:
        raise RuntimeError("The shared empty inbox takes no message: give the connection its own.")


_NO_MESSAGES = _NoMessages()


class QueuingProtocol(tornado.websocket.WebSocketProtocol13):
    """``WebSocketProtocol13`` whose data messages wait in a bounded queue (see the module)."""

    # Slots, not the instance's dict: Tornado's protocol sets 29 attributes of its own, and a dict
    # of more than 30 keys stops sharing its keys with the class's other instances (about 1.2 KiB
    # more per connection).
    # Three of Tornado's own attributes too: read for every frame written (`is_closing`), a
    # slot is quicker to reach than the instance dict.
    __slots__ = (
        "_dispatcher",
        "_inbox",
        "_inbox_bytes",
        "_room",
        "_running",
        "client_terminated",
        "server_terminated",
        "stream",
    )

    def __init__(
        self,
        handler: Any,
        mask_outgoing: bool,
        params: tornado.websocket._WebSocketParams,
    ) -> None:
        super().__init__(handler, mask_outgoing, params)
        # Data messages waiting for the running event function, and their size in bytes.
        self._inbox: collections.deque[str | bytes] = _NO_MESSAGES  # its own on the first queued
        self._inbox_bytes = 0
        # The running function's task or future; None when none runs.
        self._running: asyncio.Future[Any] | None = None
        # Set when the queue has room again, while the reader waits for it.
        self._room: asyncio.Event | None = None
        # Our handler's dispatcher: the tasks it starts say when their function returned (see
        # `function_returned`), a loop turn sooner and a callback fewer than a done callback.
        self._dispatcher = getattr(handler, "dispatcher", None)
        if self._dispatcher is not None:
            self._dispatcher.reader = self

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
        running = self._running
        if running is not None and running.done():
            # Its end not heard yet: a done callback still to run, or a task cancelled before
            # its first step, which never says it returned (see `function_returned`).
            self._function_done(running)
        if self._running is None and not self._inbox:
            self._start(message)
            return
        if self._inbox is _NO_MESSAGES:
            self._inbox = collections.deque()
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
        # No task of our own per message: the function's task (or future) chains to the next.
        running = handled if type(handled) is asyncio.Task else asyncio.ensure_future(handled)
        self._running = running
        dispatcher = self._dispatcher
        if dispatcher is None or running is not dispatcher.reporting:
            running.add_done_callback(self._function_done)

    def function_returned(self, task: asyncio.Task[Any]) -> None:
        """The dispatcher's ``task`` ran its function to the end (its last step, now): next message.

        A task that is not the one running (it returned while being started, eagerly) is the
        reader's business already: `_start` goes on with the next message itself.
        """
        if self._running is task:
            self._next()

    def _take(self) -> str | bytes:
        message = self._inbox.popleft()
        self._inbox_bytes -= len(message)
        self._wake()
        return message

    def _function_done(self, running: asyncio.Future[Any]) -> None:
        if self._running is not running:  # heard already (`_deliver`)
            return
        self._running = None
        # A cancelled task is its own business (cancel_on_close): the next message goes on.
        error = None if running.cancelled() else running.exception()
        if error is not None:  # a coroutine returned by a subclass's on_message: as Tornado does
            self.handler.log_exception(type(error), error, error.__traceback__)
            self._abort()
        self._next()

    def _next(self) -> None:
        self._running = None
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
        while (running := self._running) is not None:
            await asyncio.wait([running])
            self._function_done(running)  # if not heard yet (see `_deliver`)

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


class BulkFrameProtocol(QueuingProtocol):
    """``WebSocketProtocol13`` reading frames in bulk (see the module's docstring)."""

    async def _receive_frame_loop(self) -> None:
        if self._decompressor is not None:  # permessage-deflate: Tornado's reader inflates
            await super()._receive_frame_loop()
            return
        parser = FrameParser(self.params.max_message_size)
        self.stream.read_chunk_size = min(self.stream.read_chunk_size, RECV_SIZE)
        try:
            await self._read_frames(parser)
        except StreamClosedError:
            self._abort()
        finally:
            self.handler.on_ws_connection_close(self.close_code, self.close_reason)

    async def _read_frames(self, parser: FrameParser) -> None:
        read = self.stream.read_bytes
        work = 0
        while not self.client_terminated:
            chunk = await read(READ_SIZE, True)
            self._wire_bytes_in += len(chunk)
            work += len(chunk)
            for event in parser.feed(chunk):
                if isinstance(event, (str, bytes)):
                    if self.client_terminated:
                        break
                    self._message_bytes_in += len(event)
                    self._deliver(event)
                    work += _MESSAGE_COST
                    if self._inbox_full():
                        await self._wait_for_room()
                        work = 0
                    elif work >= _YIELD_AFTER:  # within a chunk too: it may hold thousands of messages
                        work = 0
                        await asyncio.sleep(0)
                elif isinstance(event, (Ping, Pong, Close)):
                    self._control(event)
                else:
                    # What came before the offending frame is handled first, as it was sent.
                    await self._idle()
                    self._fail(event, parser.closed)
            if work >= _YIELD_AFTER:
                work = 0
                await asyncio.sleep(0)

    # Control frames ------------------------------------------------------------------------------

    def _control(self, event: Ping | Pong | Close) -> None:
        """Answer a control frame at once, whatever the connection is running (both readers)."""
        handler = self.handler
        if isinstance(event, Ping):
            self._pong(event.data)
            self._run_callback(handler.on_ping, event.data)
        elif isinstance(event, Pong):
            self._received_pong = True
            self._run_callback(handler.on_pong, event.data)
        else:
            self._closed_by_client(event)

    def _pong(self, data: bytes) -> None:
        """Answer a ping: through Tornado's ``_send_pong`` where it has one (6.6: at most one pong
        outstanding, RFC 6455 5.5.3), else by writing the pong frame, as Tornado 6.5 does."""
        send_pong = getattr(self, "_send_pong", None)
        if send_pong is not None:
            send_pong(data)
            return
        if self.server_terminated:  # no frame may follow a close frame
            return
        try:
            self._write_frame(True, 0xA, data)
        except StreamClosedError:
            self._abort()

    def _closed_by_client(self, event: Close) -> None:
        """The client's close frame: echo its code (as Tornado does), then close the stream."""
        self.client_terminated = True
        self.close_code = event.code
        self.close_reason = event.reason or None
        self.close(self.close_code)

    def _fail(self, failure: Failure, client_closed: bool) -> None:
        """Close with the failure's code; reading goes on, dropping frames, until the client's close.

        ``client_closed``: the failure is in the client's own close frame, so none will follow.
        The drain lasts `DRAIN_SECONDS` at most, whatever the client keeps sending.
        """
        logger.debug("Closing %r with %d: %s", self.handler, failure.code, failure.reason)
        self.client_terminated = self.client_terminated or client_closed
        self.close(failure.code, failure.reason)
        if not self.client_terminated:
            self.stream.io_loop.call_later(DRAIN_SECONDS, self._drain_ended)

    def _drain_ended(self) -> None:
        if not self.stream.closed():
            logger.info("Dropping %r: no close frame %s s after its own", self.handler, DRAIN_SECONDS)
            self._abort()


def frame_protocol(
    handler: tornado.websocket.WebSocketHandler, protocol: tornado.websocket.WebSocketProtocol | None
) -> tornado.websocket.WebSocketProtocol | None:
    """The protocol Tornado chose for ``handler``, as a `BulkFrameProtocol` unless switched off.

    ``protocol`` is returned as it is when it is not a ``WebSocketProtocol13`` (None: an
    unsupported WebSocket version), when the application set `FRAME_READER_SETTING` to False,
    and when permessage-deflate will be negotiated (the client offers it and the handler's
    ``get_compression_options`` allows it): Tornado's reader inflates.
    """
    if not isinstance(protocol, tornado.websocket.WebSocketProtocol13):
        return protocol
    if not handler.settings.get(FRAME_READER_SETTING, True):
        return protocol
    offered = handler.request.headers.get("Sec-WebSocket-Extensions", "")
    if protocol.params.compression_options is not None and "permessage-deflate" in offered:
        return protocol
    return BulkFrameProtocol(handler, False, protocol.params)


def connection_protocol(
    handler: tornado.websocket.WebSocketHandler,
    ping_interval: float | None,
    ping_timeout: float | None,
    max_message_size: int,
) -> tornado.websocket.WebSocketProtocol | None:
    """The protocol of a connection (``get_websocket_protocol``): frames read in bulk, or, with
    permessage-deflate or the bulk reader switched off, Tornado's reader (`DrainingProtocol13`)."""
    if handler.request.headers.get("Sec-WebSocket-Version") != "13":
        return None
    params = tornado.websocket._WebSocketParams(
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_message_size=max_message_size,
        compression_options=handler.get_compression_options(),
    )
    return frame_protocol(handler, DrainingProtocol13(handler, False, params))


def write_backlog(handler: tornado.websocket.WebSocketHandler) -> int:
    """Bytes written to ``handler``'s connection that its socket has not taken yet (0 without one)."""
    stream = getattr(handler.ws_connection, "stream", None)
    if stream is None:
        return 0
    # IOStream keeps no public count of its write buffer; these counters have done so since
    # Tornado 5 (listed in TORNADO_PRIVATE_NAMES, checked by its test).
    return int(stream._total_write_index - stream._total_write_done_index)


def write_text(handler: tornado.websocket.WebSocketHandler, frame: bytes) -> asyncio.Future[None]:
    """Write one frame, without the Task that ``write_message`` wraps around every write.

    A JSON frame is a text message. A MessagePack frame (it holds bytes) is a binary message to a
    handler whose ``binary`` is true (it negotiated MessagePack), else its JSON text with base64
    (`tornado_websockets.binaryframes.as_text`, converted once per frame).

    ``WebSocketProtocol13.write_message`` creates a coroutine and a Task per call only to turn
    the stream's error into ``WebSocketClosedError``; on a fan-out that is one Task per client.
    Writing through the protocol's ``_write_frame`` skips it (the stream's own future still tells
    a failed write). With permessage-deflate negotiated (to keep compressing), or a Tornado
    without that method, the public ``write_message`` is used.
    """
    connection = handler.ws_connection
    opcode = 0x1
    if frame[0] != _JSON_OPEN:  # a MessagePack frame: binary to a client that negotiated it
        if getattr(handler, "binary", False):
            opcode = 0x2
        else:
            frame = binaryframes.as_text(frame)
    if connection is None or getattr(connection, "_compressor", None) is not None:
        return handler.write_message(frame, binary=opcode == 0x2)
    write_frame = getattr(connection, "_write_frame", None)
    if write_frame is None:
        return handler.write_message(frame)
    connection._message_bytes_out += len(frame)  # type: ignore[attr-defined]  # not on the base class
    future: asyncio.Future[None] = write_frame(True, opcode, frame)
    return future


class DrainingProtocol13(QueuingProtocol):
    """Tornado's protocol (permessage-deflate, or the bulk reader switched off); after closing for
    a too large message (1009) it drains the input."""

    _drain_next_abort = False
    _drain: asyncio.Task[None] | None = None

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code == 1009:
            self._drain_next_abort = True  # Tornado aborts right after this close
        super().close(code, reason)

    def _abort(self) -> None:
        stream = self.stream
        if not self._drain_next_abort or stream is None or stream.closed():
            super()._abort()
            return
        self._drain_next_abort = False
        self.client_terminated = True  # ends the receive loop; the drain reads in its place
        self.server_terminated = True
        self._drain = asyncio.ensure_future(self._drain_then_abort(stream))

    def on_connection_close(self) -> None:
        if self._drain is None or self._drain.done():
            super().on_connection_close()
        else:  # the handler is told the connection closed; the stream goes when the drain ends
            self._drop_inbox()

    async def _drain_then_abort(self, stream: tornado.iostream.IOStream) -> None:
        """Read and drop what the client sends (no memory kept), until it closes the TCP
        connection or `DRAIN_SECONDS` pass: the close frame reaches the client however large the
        message it was writing."""
        with contextlib.suppress(tornado.iostream.StreamClosedError, TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                while True:
                    await stream.read_bytes(65536, partial=True)
        super()._abort()
