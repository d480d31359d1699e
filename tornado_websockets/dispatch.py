"""Dispatch: running a connection's event functions, their replies and their errors.

An ``async def`` function runs as an asyncio task of its own (started eagerly where Python has
it), a plain ``def`` in a worker thread (its emits and its completion reach the loop together),
a ``def`` bound with ``blocking=False`` right on the loop. What a function returns is the reply
to a frame sent with an ``id``; what it raises becomes an ``error`` (or an ``ack`` with an error),
never an aborted connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from tornado_websockets import delivery, loops, protocol
from tornado_websockets.events import RESERVED_EVENTS, EventFunction, is_async_callable
from tornado_websockets.exceptions import EventError, PayloadError, ProtocolError
from tornado_websockets.limits import RATE_CLOSE_CODE, Limits, RateLimiter

if TYPE_CHECKING:
    from tornado_websockets.websockethandler import WebSocketHandler

__all__ = ["Dispatcher", "Reader", "start_task"]

logger = logging.getLogger(__name__)

_PONG = protocol.encode(protocol.PONG_EVENT, {})


class Reader(Protocol):
    """What reads a connection's frames and hands them over one at a time (`Dispatcher.reader`)."""

    def function_returned(self, task: asyncio.Task[Any]) -> None:
        """The function ``task`` runs has returned (the task's last step is under way)."""


class Dispatcher:
    """Runs the event functions of one connection (see the module); its methods run on the loop."""

    def __init__(self, connection: WebSocketHandler, inbox: loops.Inbox, limits: Limits) -> None:
        self.connection = connection
        self.limits = limits
        self._limiter = None if limits.max_rate is None else RateLimiter(limits.max_rate, limits.burst)
        self.inbox = inbox  # the connection's loop's: a worker's completion is handed over there
        self.websocket = connection.websocket
        self.server = connection.runtime
        self.loop = connection.loop
        # See `cancel_on_close`: made on first use (a set is 216 bytes; most connections have none).
        self._cancel_on_close: set[asyncio.Task[None]] | None = None
        self.ended = False  # the connection is over (see `end`)
        #: Set by the connection's reader: told of an ``async def`` function's task as its
        #: function returns (its last step), instead of adding a done callback to it.
        self.reader: Reader | None = None
        #: The task last started that will tell `reader`.
        self.reporting: asyncio.Task[None] | None = None

    def receive(self, message: str | bytes) -> Awaitable[None] | None:
        """Decode one frame and start its function; a bad frame earns a ``warning`` and nothing else.

        Returns what the reader waits for before handing over the next frame, if anything.
        """
        metrics = self.websocket.metrics
        metrics.frames_in += 1
        metrics.bytes_in += len(message)
        if self._limiter is not None and not self._limiter.allow():
            self._refuse_rate()
            return None
        write = self.connection.write_frame
        try:
            # A binary message from a client that negotiated MessagePack is one; else JSON, as ever.
            frame = protocol.decode(message, not isinstance(message, str) and self.connection.binary)
        except ProtocolError as error:
            write(protocol.warning_frame(error.message))
            if error.frame_id is not None:
                write(protocol.ack_error_frame(error.frame_id, error.message))
            return None
        function = self.websocket.events.get(frame.event)
        if function is None and frame.event == protocol.PING_EVENT:
            # The JavaScript client's liveness probe, on a path that binds no "ping" of its own.
            write(_PONG if frame.id is None else protocol.ack_frame(frame.id, {}))
            return None
        if function is None or frame.event in RESERVED_EVENTS:
            if frame.event in RESERVED_EVENTS:
                refusal = (
                    f'Event "{frame.event}" is reserved: the server runs it itself on '
                    f"{'connect' if frame.event == 'open' else 'disconnect'}; a client cannot send it."
                )
            else:
                refusal = f'Event "{frame.event}" is not bound on "{self.websocket.path}".'
            write(protocol.warning_frame(refusal, event=frame.event))
            if frame.id is not None:
                write(protocol.ack_error_frame(frame.id, refusal, frame.event))
            return None
        handled = self.dispatch(function, frame.data, frame.id)
        # The reader waits for it: the task tells when its function returned. Not one that
        # close may cancel before it runs (then only a done callback would tell). A task that
        # other code cancels before its first step (Python 3.11, where tasks do not start
        # eagerly) tells nothing either: the reader finds it done at the next frame.
        if type(handled) is asyncio.Task and self.reader is not None and not function.cancel_on_close:
            self.reporting = handled
        return handled

    def _refuse_rate(self) -> None:
        assert self._limiter is not None
        if self._limiter.refused == 1:
            limit = self.limits.max_rate
            self.connection.write_frame(
                protocol.warning_frame(f"Too many events: slow down to {limit} per second.")
            )
        elif self._limiter.refused > self.limits.burst and not self.connection.is_closed:  # once
            logger.warning("Closing %r: it kept sending past the rate limit", self.connection)
            self.connection.close(RATE_CLOSE_CODE, "Rate limit exceeded")

    async def run_guard(self, callback: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """Call a guard: ``async def`` on the loop, plain ``def`` in a thread of the connect pool."""
        if is_async_callable(callback):
            return await callback(**kwargs)
        # A plain def may block or use the Django ORM, which refuses to run on the loop. Not in
        # the event functions' pool: a new client must not wait for slow functions to finish.
        call = functools.partial(contextvars.copy_context().run, callback, **kwargs)
        result = await self.loop.run_in_executor(self.server.get_connect_executor(), call)
        return await result if inspect.isawaitable(result) else result

    def dispatch(
        self, function: EventFunction, data: Any, frame_id: protocol.FrameId | None
    ) -> Awaitable[None] | None:
        """Start an event function; returns what the reader waits for before the next frame, if anything."""
        kwargs = self._arguments(function, data, frame_id)
        if kwargs is None:
            return None
        self.server.function_started(self.loop)
        started = time.perf_counter()
        if function.is_async:
            task = start_task(self.loop, self._await(function, kwargs, frame_id, started))
            if task is None:
                return None
            # Started after the end (only ``close`` can be): nothing left to cancel it for.
            if function.cancel_on_close and not self.ended:
                self.cancel_on_close.add(task)
                task.add_done_callback(self.cancel_on_close.discard)
            return task
        if not function.blocking:
            try:
                result = function.callback(**kwargs)
            except Exception as error:
                self._finish(function, frame_id, started, None, error)
            else:
                self._finish(function, frame_id, started, result, None)
            return None
        return self._in_worker(function, kwargs, frame_id, started)

    @property
    def cancel_on_close(self) -> set[asyncio.Task[None]]:
        """Tasks of ``cancel_on_close`` event functions still running."""
        tasks = self._cancel_on_close
        if tasks is None:
            tasks = self._cancel_on_close = set()
        return tasks

    def end(self) -> None:
        """The connection is over: cancel the ``cancel_on_close`` functions still running."""
        self.ended = True
        for task in list(self._cancel_on_close or ()):
            task.cancel()

    def _arguments(
        self, function: EventFunction, data: Any, frame_id: protocol.FrameId | None
    ) -> dict[str, Any] | None:
        """The function's keyword arguments, or None after telling the client its data is wrong."""
        if function.converter is not None:
            try:
                data = function.converter(data)
            except PayloadError as error:
                message = str(error)
                write = self.connection.write_frame
                write(
                    protocol.warning_frame(message, event=function.name, path=error.path, reason=error.reason)
                )
                if frame_id is not None:
                    write(protocol.ack_error_frame(frame_id, message, function.name))
                return None
        return function.arguments(self.websocket.context, self.connection, data)

    async def _await(
        self,
        function: EventFunction,
        kwargs: dict[str, Any],
        frame_id: protocol.FrameId | None,
        started: float,
    ) -> None:
        try:
            result = await function.callback(**kwargs)
        except asyncio.CancelledError as error:
            task = asyncio.current_task()
            if task is None or task.cancelling():  # this very task is cancelled: let it end so
                self._done(started)
                raise
            # A future the function awaited was cancelled by something else: a failure like any.
            self._finish(function, frame_id, started, None, error)
        except Exception as error:
            self._finish(function, frame_id, started, None, error)
        else:
            self._finish(function, frame_id, started, result, None)
        finally:
            if self.reporting is not None and (task := asyncio.current_task(self.loop)) is self.reporting:
                self.reporting = None
                assert self.reader is not None
                self.reader.function_returned(task)

    def _in_worker(
        self,
        function: EventFunction,
        kwargs: dict[str, Any],
        frame_id: protocol.FrameId | None,
        started: float,
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.loop.create_future()
        inbox = self.inbox
        finish = self._finish_in_loop
        loop, server = self.loop, self.server

        def done(result: Any, error: BaseException | None) -> None:  # in the worker thread
            # One hand-over for the completion; emits the call made are queued before it in the
            # same inbox, so they and the reply usually reach the loop in one wake-up.
            ended = functools.partial(server.function_ended, loop)  # if the loop never runs finish
            try:
                inbox.put(finish, future, function, frame_id, started, result, error, on_lost=ended)
            except loops.LoopUnavailableError:  # the loop went, and the client with it: no reply
                ended()

        # A context of its own, as a task has: what one call sets is not seen by the next one.
        call = functools.partial(contextvars.copy_context().run, function.callback, **kwargs)
        self.server.run_in_worker(call, done)
        return future

    def _finish_in_loop(
        self,
        future: asyncio.Future[None],
        function: EventFunction,
        frame_id: protocol.FrameId | None,
        started: float,
        result: Any,
        error: BaseException | None,
    ) -> None:
        if error is None and inspect.isawaitable(result):  # a def that returned a coroutine
            future.set_result(None)
            self.server.keep(self._await_result(function, frame_id, started, result))
            return
        self._finish(function, frame_id, started, result, error)
        if not future.done():
            future.set_result(None)

    async def _await_result(
        self,
        function: EventFunction,
        frame_id: protocol.FrameId | None,
        started: float,
        awaitable: Awaitable[Any],
    ) -> None:
        try:
            result = await awaitable
        except Exception as error:
            self._finish(function, frame_id, started, None, error)
        else:
            self._finish(function, frame_id, started, result, None)

    def _done(self, started: float) -> None:
        self.server.function_ended(self.loop, on_loop=True)
        self.websocket.metrics.latency.observe(time.perf_counter() - started)

    def _finish(
        self,
        function: EventFunction,
        frame_id: protocol.FrameId | None,
        started: float,
        result: Any,
        error: BaseException | None,
    ) -> None:
        """After an event function: count it, then send its reply or tell the client it failed."""
        self._done(started)
        path = self.websocket.path
        if error is not None:
            if isinstance(error, EventError):
                self.reply_error(function.name, frame_id, error.message)
                return
            self.websocket.metrics.handler_errors += 1
            logger.error('Event function for "%s" on "%s" raised', function.name, path, exc_info=error)
            self.reply_error(function.name, frame_id, protocol.failure_message(function.name))
            return
        if frame_id is not None:
            try:
                if function.reply is not None:
                    result = function.reply(result)
                self.connection.write_frame(protocol.ack_frame(frame_id, result))
            except (TypeError, PayloadError):
                delivery.record_drop(delivery.ENCODING_ERROR, path)
                logger.exception('The reply of "%s" on "%s" cannot be encoded', function.name, path)
                self.reply_error(function.name, frame_id, protocol.failure_message(function.name))

    def reply_error(self, event: str, frame_id: protocol.FrameId | None, message: str) -> None:
        """Tell the client that ``event`` failed: an ``error``, or the ``ack`` of its request."""
        if self.connection.is_closed:
            return
        if frame_id is None:
            self.connection.write_frame(protocol.error_frame(event, message))
        else:
            self.connection.write_frame(protocol.ack_error_frame(frame_id, message, event))


if sys.version_info >= (3, 12):

    def start_task(
        loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None] | None:
        """Run an event function's coroutine as a task of its own, started eagerly.

        An eager task runs up to its first suspension right here; one that never suspends (it
        emits and returns) is done at once and the reader has nothing to wait for.
        """
        task = asyncio.eager_task_factory(loop, coroutine)
        return None if task.done() and not task.cancelled() else task

else:

    def start_task(
        loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None] | None:
        """Run an event function's coroutine as a task of its own (the reader waits for it)."""
        if type(loop).create_task is _BASE_CREATE_TASK and loop.get_task_factory() is None:
            # What asyncio's create_task does then, without its checks that cost a frame each time.
            return asyncio.Task(coroutine, loop=loop)
        return loop.create_task(coroutine)

    _BASE_CREATE_TASK = asyncio.BaseEventLoop.create_task
