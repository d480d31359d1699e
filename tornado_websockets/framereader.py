"""Read a connection's frames in bulk: Tornado's WebSocket protocol with `FrameParser` as its reader.

Tornado's ``WebSocketProtocol13`` awaits the stream four times per frame (header, length, mask,
payload), each a future and a trip through the ``IOStream``. `BulkFrameProtocol` reads whatever
the socket holds, up to `READ_SIZE` at once, and parses every complete frame of it in one pass
(`tornado_websockets.frames`). Everything else is Tornado's: the handshake, writing, keepalive
pings, closing. Messages reach ``on_message`` exactly as Tornado hands them over: text as ``str``,
binary as ``bytes``, one at a time; an awaitable returned by ``on_message`` is awaited before the
next message is handed over.

Where it differs from Tornado's reader, on purpose:

- A protocol error is answered with a close frame, 1002 (or 1007 for text that is not UTF-8)
  where Tornado drops the TCP connection without one; a message over ``max_message_size`` gets
  1009, as with Tornado.
- After such a close frame, what the client still sends is read and dropped (at most
  `DRAIN_BYTES`, and for at most Tornado's close timeout of 5 s) until the client's own close
  frame, so that the close frame reaches a client that is still writing instead of being lost
  in a TCP reset.

Where permessage-deflate will be negotiated, Tornado's own reader runs. Set the Tornado application setting
`FRAME_READER_SETTING` to False to use Tornado's reader for every connection.
"""

from __future__ import annotations

import asyncio
import logging

import tornado.websocket
from tornado.iostream import StreamClosedError

from tornado_websockets.frames import Close, Failure, FrameParser, Ping, Pong

__all__ = [
    "DRAIN_BYTES",
    "FRAME_READER_SETTING",
    "READ_SIZE",
    "RECV_SIZE",
    "BulkFrameProtocol",
    "frame_protocol",
]

logger = logging.getLogger(__name__)

#: Tornado application setting: False reads frames with Tornado's own reader (default True).
FRAME_READER_SETTING = "tornado_websockets_frame_reader"
#: Bytes asked of the stream at once (it returns what it has, up to this).
READ_SIZE = 64 * 1024
#: Bytes the stream asks of the socket per call: it allocates and zeroes a buffer this large for
#: every call, which at Tornado's 64 KiB costs more than parsing a small frame (1.8 µs, not 0.3).
RECV_SIZE = 16 * 1024
#: Bytes read and dropped after a protocol error before the connection is dropped without waiting.
DRAIN_BYTES = 16 * 1024 * 1024
# Let other connections run after this much work, counting each message as 1 KiB: Tornado's
# own fairness rule (its _YIELD_THRESHOLD and _FRAME_YIELD_COST).
_YIELD_AFTER = 256 * 1024
_MESSAGE_COST = 1024


class BulkFrameProtocol(tornado.websocket.WebSocketProtocol13):
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
        handler = self.handler
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
                    handled = self._run_callback(handler.on_message, event)
                    if handled is not None:
                        await handled
                    work += _MESSAGE_COST
                    if work >= _YIELD_AFTER:  # within a chunk too: it may hold thousands of messages
                        work = 0
                        await asyncio.sleep(0)
                elif isinstance(event, Ping):
                    self._send_pong(event.data)
                    self._run_callback(handler.on_ping, event.data)
                elif isinstance(event, Pong):
                    self._received_pong = True
                    handled = self._run_callback(handler.on_pong, event.data)
                    if handled is not None:
                        await handled
                elif isinstance(event, Close):
                    self._closed_by_client(event)
                else:
                    self._fail(event, parser.closed)
            if parser.failed and parser.discarded > DRAIN_BYTES:
                logger.info("Dropping a connection that sent %d bytes after its close frame", DRAIN_BYTES)
                self._abort()
                return
            if work >= _YIELD_AFTER:
                work = 0
                await asyncio.sleep(0)

    def _closed_by_client(self, event: Close) -> None:
        """The client's close frame: echo its code (as Tornado does), then close the stream."""
        self.client_terminated = True
        self.close_code = event.code
        self.close_reason = event.reason or None
        self.close(self.close_code)

    def _fail(self, failure: Failure, client_closed: bool) -> None:
        """Close with the failure's code; reading goes on, dropping frames, until the client's close.

        ``client_closed``: the failure is in the client's own close frame, so none will follow.
        """
        logger.debug("Closing %r with %d: %s", self.handler, failure.code, failure.reason)
        self.client_terminated = self.client_terminated or client_closed
        self.close(failure.code, failure.reason)


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
