"""Handing work to the asyncio loop that serves a connection, from any thread.

Each connection belongs to the loop that accepted it (a test's fresh loop, a second server's, a
user's own). Work for that loop from another thread (an emit from a plain ``def`` event function,
a view, a worker) goes through the loop's `Inbox`: calls are queued in order and one wake-up of the
loop runs every call queued until then, so a function that emits and returns costs the loop one
wake-up, not one per emit. Nothing queued waits longer than the loop takes to wake.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DEFAULT_WAIT", "Inbox", "LoopUnavailableError", "call_soon", "call_wait", "inbox", "running_loop"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a thread waits for the loop to run a call it needs the result of.
DEFAULT_WAIT = 10.0

# asyncio's own fast check for "is a loop running in this thread", without raising when none is
# (``asyncio.get_running_loop`` raises, which costs far more on the hot path).
running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio._get_running_loop


class LoopUnavailableError(RuntimeError):
    """The loop a call was meant for has stopped or closed: nothing can run on it any more."""


class Inbox:
    """Calls queued for one loop from other threads, run in order, many per wake-up."""

    __slots__ = ("__weakref__", "_calls", "_lock", "_scheduled", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._calls: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def put(self, callback: Callable[..., Any], *args: Any) -> None:
        """Queue ``callback(*args)`` for the loop; raises `LoopUnavailableError` if it no longer runs."""
        if not self.loop.is_running():
            raise LoopUnavailableError("The loop serving this connection has stopped.")
        with self._lock:
            self._calls.append((callback, args))
            if self._scheduled:
                return  # the wake-up already asked for runs this call too
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # closed between the check and now
            with self._lock:
                self._scheduled = False
                self._calls.clear()
            raise LoopUnavailableError("The loop serving this connection is closed.") from None

    def _run(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, collections.deque()
            self._scheduled = False
        for callback, args in calls:
            try:
                callback(*args)
            except Exception:
                logger.exception("A call handed to the loop raised: %r", callback)


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Inbox] = weakref.WeakKeyDictionary()
_inboxes_lock = threading.Lock()


def inbox(loop: asyncio.AbstractEventLoop) -> Inbox:
    """The `Inbox` of ``loop`` (one per loop, made on first use)."""
    found = _inboxes.get(loop)
    if found is None:
        with _inboxes_lock:
            found = _inboxes.get(loop)
            if found is None:
                found = _inboxes[loop] = Inbox(loop)
    return found


def call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    """Run ``callback(*args)`` on ``loop``: now if this thread runs it, else queued in order.

    :raise LoopUnavailableError: ``loop`` has stopped or closed.
    """
    if running_loop() is loop:
        callback(*args)
    else:
        inbox(loop).put(callback, *args)


def call_wait(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., T], *args: Any, timeout: float = DEFAULT_WAIT
) -> T:
    """Run ``callback(*args)`` on ``loop`` and return its result, waiting for it from another thread.

    Calls queued before it from this thread run before it, so their effects are visible too.

    :raise LoopUnavailableError: ``loop`` has stopped or closed.
    :raise TimeoutError: the loop did not run it within ``timeout`` seconds.
    """
    if running_loop() is loop:
        return callback(*args)
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(callback(*args))
        except BaseException as error:
            future.set_exception(error)

    inbox(loop).put(run)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"The server loop did not run {callback!r} within {timeout}s.") from None
