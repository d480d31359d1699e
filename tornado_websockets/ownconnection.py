"""Own the connection after the upgrade: frames read and written on an asyncio transport.

Tornado answers the HTTP upgrade (TLS, the handshake, the ``open`` function); then, unless the
application setting `OWN_CONNECTION_SETTING` is False, `OwnedFrameProtocol` takes the socket from
Tornado's ``IOStream`` and hands it to the loop (``loop.connect_accepted_socket``) with a
`TransportStream`, an ``asyncio.BufferedProtocol``; no coroutine waits for the connection's end
(the transport's ``connection_lost`` is it):

- reading: each chunk the loop reads (into one buffer per thread) goes straight to the sans-I/O
  `~tornado_websockets.frames.FrameParser` (no future, no coroutine per read), its messages to
  the bounded queue of
  `~tornado_websockets.framereader.QueuingProtocol`; where the bulk reader awaits (a full queue,
  its fairness rule, a failure waiting for the messages before it), reading is paused and the
  events left are handled when the wait is over;
- writing: each frame is one ``transport.write`` of header and payload (`tornado_websockets.wire`;
  a broadcast's frame is built once for all its members), no ``IOStream`` buffer, no future
  unless the socket did not take it all. Bytes the socket has not taken are the transport's write
  buffer (`TransportStream.write_buffer_size`): the outbox's backlog, so the slow-consumer bound
  (1013) is unchanged;
- keepalive pings (``websocket_ping_interval``/``websocket_ping_timeout``): Tornado's steps, on a
  timer of the loop instead of a task per connection (`OwnedFrameProtocol.start_pinging`).

Everything else is the bulk reader's and Tornado's, unchanged: the close handshake, close codes,
the drain after a failure, ``on_close``. `TransportStream` offers the part of ``IOStream`` they
use (``write``, ``close``, ``closed``, ``set_nodelay``, ``socket``, ``io_loop``). The private
names of Tornado used here (the stream's read buffer and state) are listed in
`tornado_websockets.framereader.TORNADO_PRIVATE_NAMES`.

Tornado keeps the connection (the bulk reader or its own, `tornado_websockets.framereader`)
with permessage-deflate, with TLS (an ``SSLIOStream``), with the bulk reader switched off
(`~tornado_websockets.framereader.FRAME_READER_SETTING`), and with this setting False.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any, cast

import tornado.iostream
import tornado.websocket
from tornado.http1connection import HTTP1ServerConnection
from tornado.iostream import StreamClosedError

from tornado_websockets import binaryframes, framereader, loops, wire
from tornado_websockets.frames import Close, Event, Failure, FrameParser, Ping, Pong

if TYPE_CHECKING:
    import tornado.ioloop

__all__ = [
    "OWN_CONNECTION_SETTING",
    "OwnedFrameProtocol",
    "TransportStream",
    "connection_protocol",
    "owns",
]

logger = logging.getLogger(__name__)

#: Tornado application setting: True (the default) serves each connection on an asyncio transport
#: after the upgrade (see the module); False leaves it on Tornado's ``IOStream``.
OWN_CONNECTION_SETTING = "tornado_websockets_own_connection"
#: The setting's value where the application does not set it.
OWN_CONNECTION_DEFAULT = True

# Messages handed over before letting other connections run: the bulk reader's rule (256 KiB
# of work, a message counting as 1 KiB); the loop itself reads at most 256 KiB per chunk.
_MESSAGES_PER_TURN = framereader._YIELD_AFTER // framereader._MESSAGE_COST
_JSON_OPEN = 0x7B


# What the loop reads into: one buffer per thread, shared by its connections (the loop calls
# buffer_updated right after reading into it, and the bytes are copied out at once). A buffer
# per read, as data_received costs, is 256 KiB allocated per chunk however small the frame.
_buffers = threading.local()
# The tasks making transports, until each is done.
_making: set[asyncio.Future[Any]] = set()


def _flushed(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    """A done future of ``loop``, shared by its thread's connections (see `TransportStream`): one
    per connection is 144 bytes, and a done future is the same to whoever awaits it."""
    future: asyncio.Future[None] | None = getattr(_buffers, "flushed", None)
    if future is None or future.get_loop() is not loop:  # the thread's first loop, or a new one
        future = _buffers.flushed = loop.create_future()
        future.set_result(None)
    return future


def _read_buffer() -> memoryview:
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(framereader.READ_SIZE))
    return view


class TransportStream(asyncio.BufferedProtocol):
    """A connection's transport, seen by `OwnedFrameProtocol` as its stream (see the module).

    Write futures: a write the socket took at once returns one future, done, shared by every such
    write of the thread's connections; a write left in the transport's buffer returns a future
    resolved when the buffer is empty again (``resume_writing``, the limits being 0), or failed
    with ``StreamClosedError`` when the connection is lost with it unsent, as ``IOStream.write``'s
    are.
    """

    __slots__ = (
        "_closed",
        "_early",
        "_flushed",
        "_loop",
        "_lost",
        "_paused",
        "_reading",
        "_unread",
        "_waiting",
        "io_loop",
        "owner",
        "transport",
    )

    def __init__(
        self,
        owner: OwnedFrameProtocol,
        io_loop: tornado.ioloop.IOLoop,
        loop: asyncio.AbstractEventLoop,
        unread: bytes,
    ) -> None:
        self.owner = owner
        #: Tornado's loop object, which the protocol's close timeout and drain timer use.
        self.io_loop = io_loop
        self.transport: asyncio.Transport | None = None
        self._loop = loop
        self._unread = unread  # what the IOStream had read past the upgrade request
        self._early: list[bytes] = []  # written before the transport was made
        self._closed = False
        self._lost = False
        self._paused = False  # the transport holds bytes the socket did not take (pause_writing)
        self._flushed = _flushed(loop)
        # Futures of writes not sent yet, oldest first (a list: an idle connection's is empty,
        # and a deque would cost 600 bytes per connection).
        self._waiting: list[asyncio.Future[None]] = []
        self._reading = _read_buffer()

    # asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A socket transport (uvloop's is one without subclassing asyncio.Transport).
        self.transport = transport = cast("asyncio.Transport", transport)
        # Paused while anything is buffered, resumed once it is all sent: the flush signal.
        transport.set_write_buffer_limits(high=0, low=0)
        if self._closed:  # closed before the transport was made
            transport.abort()
            return
        early, self._early = self._early, []
        for data in early:
            transport.write(data)
        if not transport.get_write_buffer_size():
            self.resume_writing()  # the early writes' futures: all sent
        unread, self._unread = self._unread, b""
        if unread:
            self.owner.received(unread)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the loop reads to: this thread's buffer, shared by its connections (a connection
        stays on the loop, so the thread, it was made on)."""
        return self._reading

    def buffer_updated(self, nbytes: int) -> None:
        """The loop read ``nbytes``: copied out at once, parsed, handled."""
        self.owner.received(bytes(self._reading[:nbytes]))

    def eof_received(self) -> bool:
        return False  # the client closed its side: the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:  # the transport failed as it was made, and said so too
            return
        self._lost = True
        self._closed = True
        self._fail_waiting()
        self.owner.lost()

    def pause_writing(self) -> None:
        # The buffer is not empty (the limits are 0): writes return futures (see write).
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiting, self._waiting = self._waiting, []
        for future in waiting:
            if not future.done():
                future.set_result(None)

    # The part of IOStream the protocol uses -----------------------------------------------------

    def closed(self) -> bool:
        """Whether the connection is closed (or closing: nothing more is written)."""
        return self._closed

    def write(self, data: bytes) -> asyncio.Future[None]:
        """Write ``data``; the future is done once the socket took it (see the class)."""
        future = self.send(data)
        return self._flushed if future is None else future

    def send(self, data: bytes) -> asyncio.Future[None] | None:
        """`write`, returning None (no future) when the socket took all of ``data`` at once."""
        if self._closed:
            raise StreamClosedError()
        transport = self.transport
        if transport is None:
            self._early.append(data)
        else:
            transport.write(data)
            # With limits of 0 the transport pauses the protocol as soon as it keeps a byte.
            if not self._paused:
                return None
        future = self._loop.create_future()
        self._waiting.append(future)
        return future

    def write_buffer_size(self) -> int:
        """Bytes written that the socket has not taken yet."""
        if not self._paused:  # all sent (the transport's pause tells otherwise), or not made yet
            return sum(len(data) for data in self._early) if self._early else 0
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def close(self) -> None:
        """Close now: what the socket took goes out, what it did not is dropped (as IOStream does)."""
        if self._closed:
            return
        self._closed = True
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    @property
    def socket(self) -> socket.socket | None:
        """The connection's socket (None before the transport is made), as ``IOStream.socket``."""
        return None if self.transport is None else self.transport.get_extra_info("socket")

    def set_nodelay(self, value: bool) -> None:
        """TCP_NODELAY on the socket (set already while Tornado had it: kept for the interface)."""
        sock = self.socket
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if value else 0)

    def _fail_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for future in waiting:
            if not future.done():
                future.set_exception(StreamClosedError())
                future.exception()  # retrieved: a close frame's future has no reader


def owns(stream: Any) -> bool:
    """Whether a connection on ``stream`` can be owned: a plain IOStream (TLS stays on Tornado's
    SSLIOStream) on an asyncio loop, with no read of its own under way."""
    return (
        type(stream) is tornado.iostream.IOStream
        and getattr(stream.io_loop, "asyncio_loop", None) is not None
        and not stream.reading()
        and not stream._user_read_buffer
    )


class OwnedFrameProtocol(framereader.BulkFrameProtocol):
    """The bulk reader's protocol, serving the connection on `TransportStream` once it is open."""

    __slots__ = ("_held", "_held_at", "_keepalive", "_parser", "_resume_scheduled")  # see QueuingProtocol's

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parser: FrameParser | None = None
        # Events parsed and not handled yet (reading is paused meanwhile), from this index.
        self._held: list[Event] | None = None
        self._held_at = 0
        self._resume_scheduled = False
        # The keepalive's next step (see start_pinging), None when it is not running.
        self._keepalive: asyncio.TimerHandle | None = None

    # Keepalive ----------------------------------------------------------------------------------

    def start_pinging(self) -> None:
        """Keepalive pings, as Tornado's ``periodic_ping`` sends them (``websocket_ping_interval``,
        ``websocket_ping_timeout``), on a timer of the loop instead of a task per connection: a
        task, its coroutine and its sleep cost an idle connection 1 KiB more than one timer."""
        if self._keepalive is None and self.ping_interval > 0:
            self._keepalive = asyncio.get_running_loop().call_later(self.ping_interval, self._send_ping)

    def _send_ping(self) -> None:
        if self.is_closing():
            self._keepalive = None
            return
        loop = asyncio.get_running_loop()
        self._received_pong = False
        sent = loop.time()
        self.write_ping(b"")
        self._keepalive = loop.call_later(self.ping_timeout, self._check_pong, sent)

    def _check_pong(self, sent: float) -> None:
        """The ping's timeout is over: close without its pong, else ping again ``ping_interval``
        after the last ping."""
        if self.ping_timeout > 0 and not self._received_pong:
            self._keepalive = None
            self.close(reason="ping timed out")
            return
        loop = asyncio.get_running_loop()
        self._keepalive = loop.call_later(max(0.0, sent + self.ping_interval - loop.time()), self._send_ping)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        super().close(code, reason)
        keepalive, self._keepalive = self._keepalive, None
        if keepalive is not None:
            keepalive.cancel()

    async def _receive_frame_loop(self) -> None:
        stream = self.stream
        if self._decompressor is not None or not owns(stream):
            await super()._receive_frame_loop()
            return
        assert isinstance(stream, tornado.iostream.IOStream)
        try:
            while stream.writing():  # the 101 response and what open() wrote go out first
                await stream.write(b"")
        except StreamClosedError:
            self._abort()
            self.handler.on_ws_connection_close(self.close_code, self.close_reason)
            return
        if self.stream is not stream or stream.closed() or not owns(stream) or self.client_terminated:
            self.handler.on_ws_connection_close(self.close_code, self.close_reason)
            return
        self._parser = FrameParser(self.params.max_message_size)
        # Returns at once: no coroutine waits for the connection's end (the handler's request
        # task ends here, its frames freed); the transport's connection_lost reports it (`lost`).
        self._take_over(stream)

    def _take_over(self, stream: tornado.iostream.IOStream) -> TransportStream:
        """Take the socket from ``stream`` (nothing of it is left to Tornado) onto a transport."""
        loop = loops.asyncio_loop_of(stream.io_loop)
        unread = bytes(stream._read_buffer[: stream._read_buffer_size])
        stream._read_buffer = bytearray()
        stream._read_buffer_size = 0
        sock = stream.socket
        if stream._state is not None:
            stream.io_loop.remove_handler(sock)
            stream._state = None
        # The IOStream keeps a socket object without a file descriptor: closing it (whatever still
        # holds the IOStream) does nothing to the connection.
        owned_socket = socket.socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        # The request keeps its HTTP server connection (``request.server_connection``, read only
        # to route the request), which keeps the emptied IOStream (2-3 KiB) and its request loop's
        # finished task (0.7 KiB) for nothing. The request loop has ended: the request lets it go.
        request: Any = getattr(self.handler, "request", None)
        server_connection = getattr(request, "server_connection", None)
        if isinstance(server_connection, HTTP1ServerConnection) and server_connection.stream is stream:
            request.server_connection = None
        owned = TransportStream(self, stream.io_loop, loop, unread)
        # Typed as an IOStream by Tornado: the stream is the part of it that Tornado's protocol uses.
        self.stream = cast("tornado.iostream.IOStream", owned)
        made = asyncio.ensure_future(loop.connect_accepted_socket(lambda: owned, owned_socket))
        _making.add(made)  # the loop holds tasks weakly: kept until the transport is made
        made.add_done_callback(functools.partial(_transport_made, owned))
        outbox = getattr(self.handler, "outbox", None)
        if outbox is not None:  # our handler's frames: straight to the transport from now on
            outbox.use(self.send_text, owned.write_buffer_size, self.is_closing)
        return owned

    def is_closing(self) -> bool:
        """Whether the connection is closing or closed (Tornado's test, the stream's first)."""
        stream: TransportStream = self.stream  # type: ignore[assignment]
        return stream._closed or self.client_terminated or self.server_terminated

    # Reading ------------------------------------------------------------------------------------

    def received(self, data: bytes) -> None:
        """A chunk from the client (`TransportStream`): its events, in order."""
        parser = self._parser
        assert parser is not None
        self._wire_bytes_in += len(data)
        events = parser.feed(data)
        if self._held is not None:  # cannot happen while paused, but a chunk may race a pause
            self._held.extend(events)
            return
        if events:
            self._handle(events, 0)

    def _handle(self, events: list[Event], start: int) -> None:
        """Handle ``events`` from ``start``; where the bulk reader would await, hold the rest."""
        turn = 0
        index = start
        count = len(events)
        while index < count:
            event = events[index]
            index += 1
            if isinstance(event, (str, bytes)):
                if self.client_terminated:
                    return
                self._message_bytes_in += len(event)
                self._deliver(event)
                turn += 1
                if self._inbox_full() or turn >= _MESSAGES_PER_TURN:
                    self._hold(events, index, soon=not self._inbox_full())
                    return
            elif isinstance(event, (Ping, Pong, Close)):
                self._control(event)
            elif isinstance(event, Failure):
                if self._running is not None:  # what came before it is handled first, as sent
                    self._hold(events, index - 1, soon=False)
                    return
                parser = self._parser
                assert parser is not None
                self._fail(event, parser.closed)

    def _hold(self, events: list[Event], index: int, soon: bool) -> None:
        """Stop reading; handle ``events[index:]`` next turn (``soon``) or once the queue has room."""
        self._held = events
        self._held_at = index
        stream = self.stream
        if isinstance(stream, TransportStream) and stream.transport is not None:
            stream.transport.pause_reading()
        if soon:
            self._schedule_resume()

    def _wake(self) -> None:
        super()._wake()
        if self._held is not None:
            self._schedule_resume()

    def _schedule_resume(self) -> None:
        if not self._resume_scheduled:
            self._resume_scheduled = True
            asyncio.get_running_loop().call_soon(self._resume)

    def _resume(self) -> None:
        self._resume_scheduled = False
        events = self._held
        if events is None:
            return
        at = self._held_at
        failure_next = at < len(events) and isinstance(events[at], Failure)
        if self._running is not None and (self._inbox_full() or failure_next):
            return  # woken again when the running function takes a message, or is done
        self._held = None
        if at < len(events):
            self._handle(events, at)
        stream = self.stream
        if self._held is None and isinstance(stream, TransportStream) and stream.transport is not None:
            stream.transport.resume_reading()

    def lost(self) -> None:
        """The transport is gone (either side closed it, or the network failed): the end."""
        self._held = None
        if not (self.client_terminated and self.server_terminated):
            self._abort()
        self.handler.on_ws_connection_close(self.close_code, self.close_reason)

    # Writing ------------------------------------------------------------------------------------

    def _write_frame(self, fin: bool, opcode: int, data: bytes, flags: int = 0) -> asyncio.Future[None]:
        stream = self.stream
        if not isinstance(stream, TransportStream):
            return super()._write_frame(fin, opcode, data, flags)
        frame = wire.server_frame(opcode, data, fin, flags)
        self._wire_bytes_out += len(frame)
        return stream.write(frame)

    def send_text(self, frame: bytes) -> asyncio.Future[None] | None:
        """`framereader.write_text` on the owned connection: one encoded frame as one message (the
        outbox's send once the connection is owned). None: the socket took it at once."""
        opcode = wire.TEXT
        if frame[0] != _JSON_OPEN:  # MessagePack: binary to a client that negotiated it, else its JSON
            if getattr(self.handler, "binary", False):
                opcode = wire.BINARY
            else:
                frame = binaryframes.as_text(frame)
        # Tornado's byte counters (``_message_bytes_out``, ``_wire_bytes_out``) are not kept up
        # here: nothing reads them, and two writes to the instance dict per member are a sixth
        # of a fan-out's work in Python.
        stream: TransportStream = self.stream  # type: ignore[assignment]  # owned: it is one
        return stream.send(wire.message_frame(opcode, frame))


def _transport_made(owned: TransportStream, future: asyncio.Future[Any]) -> None:
    """The transport is made; or it could not be (the socket failed meanwhile): the connection is over."""
    _making.discard(future)
    error = None if future.cancelled() else future.exception()
    if future.cancelled() or error is not None:
        logger.debug("No transport for %r: %r", owned.owner.handler, error)
        owned.connection_lost(error if isinstance(error, Exception) else None)


def connection_protocol(
    handler: tornado.websocket.WebSocketHandler,
    ping_interval: float | None,
    ping_timeout: float | None,
    max_message_size: int,
) -> tornado.websocket.WebSocketProtocol | None:
    """The protocol of a connection: `OwnedFrameProtocol` where the bulk reader would serve it and
    the application set `OWN_CONNECTION_SETTING`; else `framereader.connection_protocol`'s."""
    protocol = framereader.connection_protocol(handler, ping_interval, ping_timeout, max_message_size)
    if type(protocol) is framereader.BulkFrameProtocol and handler.settings.get(
        OWN_CONNECTION_SETTING, OWN_CONNECTION_DEFAULT
    ):
        return OwnedFrameProtocol(handler, False, protocol.params)
    return protocol
