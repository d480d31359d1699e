"""WebSocketHandler: one client connection; decodes its frames and dispatches them to event functions."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import tornado.ioloop
import tornado.websocket

from tornado_websockets import delivery, protocol
from tornado_websockets import websocket as websocket_module
from tornado_websockets.events import RESERVED_EVENTS, EventFunction
from tornado_websockets.exceptions import InvalidInstanceError, ProtocolError
from tornado_websockets.tornadowrapper import TornadoWrapper

if TYPE_CHECKING:
    from tornado_websockets.websocket import WebSocket

__all__ = ["WebSocketHandler"]

logger = logging.getLogger(__name__)


class WebSocketHandler(tornado.websocket.WebSocketHandler):
    """One WebSocket connection, handed to event functions as ``socket``.

    Created by Tornado for each client of a `~tornado_websockets.websocket.WebSocket` path; do not
    instantiate it yourself. Frames of one connection are handled one at a time, in order.
    """

    websocket: WebSocket

    def initialize(self, websocket: WebSocket) -> None:
        """Link this connection to its `~tornado_websockets.websocket.WebSocket`."""
        if not isinstance(websocket, websocket_module.WebSocket):
            raise InvalidInstanceError(websocket, "tornado_websockets.websocket.WebSocket")
        self.websocket = websocket
        self._opened = False

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"<WebSocketHandler {self.websocket.path!r} {state} from {self.request.remote_ip}>"

    @property
    def is_closed(self) -> bool:
        """True once the connection is closing or closed."""
        connection = self.ws_connection
        return connection is None or connection.is_closing()

    # Tornado callbacks -------------------------------------------------------------------------

    def open(self, *args: str, **kwargs: str) -> Awaitable[None] | None:
        """Register the connection, then run the ``open`` event function if one is bound."""
        if TornadoWrapper.io_loop is None:
            TornadoWrapper.io_loop = tornado.ioloop.IOLoop.current()
        self._opened = True
        self.websocket.handlers.append(self)
        for module in self.websocket.modules:
            module.on_open(self)
        function = self.websocket.events.get("open")
        return None if function is None else self._call(function, {})

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        """Decode one frame and dispatch it; a bad frame earns a ``warning`` and nothing else."""
        try:
            frame = protocol.decode(message)
        except ProtocolError as error:
            self.write_frame(protocol.warning_frame(error.message))
            return None
        function = self.websocket.events.get(frame.event)
        if function is None or frame.event in RESERVED_EVENTS:
            self.write_frame(
                protocol.warning_frame(
                    f'Event "{frame.event}" is not bound on "{self.websocket.path}".', event=frame.event
                )
            )
            return None
        return self._call(function, frame.data)

    def on_close(self) -> None:
        """Unlink the connection, then run the ``close`` event function if one is bound."""
        if not self._opened:  # the upgrade failed before open() ran
            return
        self._unlink()
        function = self.websocket.events.get("close")
        if function is not None:
            tornado.ioloop.IOLoop.current().add_callback(self._call, function, {})

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection; it leaves ``ws.handlers`` at once, not when the client answers."""
        self._unlink()
        super().close(code, reason)

    def _unlink(self) -> None:
        with contextlib.suppress(ValueError):  # already unlinked by close()
            self.websocket.handlers.remove(self)

    # Dispatch ------------------------------------------------------------------------------------

    async def _call(self, function: EventFunction, data: dict[str, Any]) -> None:
        kwargs = function.arguments(self.websocket.context, self, data)
        try:
            if function.is_async:
                await function.callback(**kwargs)
            else:
                # A plain def may block or use the Django ORM, which refuses to run on the loop.
                loop = asyncio.get_running_loop()
                call = functools.partial(function.callback, **kwargs)
                result = await loop.run_in_executor(TornadoWrapper.get_executor(), call)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            logger.exception('Event function for "%s" on "%s" raised', function.name, self.websocket.path)
            if not self.is_closed:
                self.write_frame(protocol.error_frame(function.name))

    # Sending -------------------------------------------------------------------------------------

    def emit(self, event: str, data: dict[str, Any] | str | None = None) -> None:
        """Send ``{"event": event, "data": data}`` to this client only; safe from any thread.

        :raise tornado.websocket.WebSocketClosedError: the connection is closed.
        :raise TypeError: ``event`` is not a str, or ``data`` is not a dict, a str or None.
        """
        frame = protocol.encode_emit(event, data)
        if self.is_closed:
            raise tornado.websocket.WebSocketClosedError()
        if not TornadoWrapper.call_in_loop(self.write_frame, frame):
            raise tornado.websocket.WebSocketClosedError()

    def emit_warning(self, message: str) -> None:
        """Send a ``warning`` event, as the server does for frames it cannot understand."""
        self.write_frame(protocol.warning_frame(message))

    def write_frame(self, frame: bytes) -> None:
        """Write an already encoded text frame; a closed connection counts a drop instead."""
        if self.is_closed:
            delivery.record_drop(delivery.CONNECTION_CLOSED, self.websocket.path)
            return
        try:
            future = self.write_message(frame)
        except tornado.websocket.WebSocketClosedError:
            delivery.record_drop(delivery.CONNECTION_CLOSED, self.websocket.path)
            return
        future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            delivery.record_drop(delivery.WRITE_FAILED, self.websocket.path)
