"""Handing work to the asyncio loop that serves a connection, from any thread.

Each connection belongs to the loop that accepted it (a test's fresh loop, a second server's, a
user's own). Work for that loop from another thread (an emit from a plain ``def`` event function,
a view, a worker) goes through the loop's `Inbox`: calls are queued in order and one wake-up of the
loop runs every call queued until then, so a function that emits and returns costs the loop one
wake-up, not one per emit. Nothing queued waits longer than the loop takes to wake.

Which event loop a server runs on is chosen here too: `use_loop` makes ``"uvloop"`` (the
``uvloop`` extra) this thread's loop before Tornado asks for one; ``"asyncio"`` is the default.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import importlib.util
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from tornado.ioloop import IOLoop
from tornado.platform.asyncio import BaseAsyncIOLoop

from tornado_websockets import delivery

__all__ = [
    "CALLS_PER_WAKE",
    "CALL_COST",
    "DEFAULT_WAIT",
    "LOOP_NAMES",
    "MAX_QUEUED",
    "UVLOOP_MISSING",
    "Inbox",
    "LoopUnavailableError",
    "asyncio_loop_of",
    "call_soon",
    "call_wait",
    "check_loop_name",
    "inbox",
    "loop_available",
    "running_loop",
    "use_loop",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a thread waits for the loop to run a call it needs the result of.
DEFAULT_WAIT = 10.0
#: Calls one wake-up of the loop runs at most; the rest wait for the loop's next iteration.
CALLS_PER_WAKE = 256
#: What one queued call weighs in the inbox, in bytes, besides the frame it writes.
CALL_COST = 1024
#: Bytes the inbox may hold (a connection's default ``max_backlog``) before a producing thread
#: waits: 4096 calls at most, fewer when they carry frames.
MAX_QUEUED = 4 * 1024 * 1024
# How often a waiting thread checks that the loop still runs.
_WAIT_SLICE = 0.1

# asyncio's own fast check for "is a loop running in this thread", without raising when none is
# (``asyncio.get_running_loop`` raises, which costs far more on the hot path).
running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio._get_running_loop


_Call = tuple[Callable[..., Any], tuple[Any, ...], int, "str | None", "Callable[[], Any] | None"]


class LoopUnavailableError(RuntimeError):
    """The loop a call was meant for has stopped or closed: nothing can run on it any more."""


class Inbox:
    """Calls queued for one loop from other threads, run in order, many per wake-up (bounded)."""

    __slots__ = (
        "__weakref__",
        "_calls",
        "_lock",
        "_room",
        "_scheduled",
        "_weight",
        "loop",
        "lost",
        "max_queued",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, max_queued: int = MAX_QUEUED) -> None:
        self.loop = loop
        #: Bytes the inbox may hold before a producing thread (that runs no loop) waits.
        self.max_queued = max_queued
        # (callback, args, weight, the path of the frame it writes if any, what to do if lost)
        self._calls: collections.deque[_Call] = collections.deque()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # notified when the loop took calls
        self._scheduled = False
        self._weight = 0
        #: Calls (other than frame writes, counted as drops) abandoned because the loop stopped.
        self.lost = 0

    def __len__(self) -> int:
        """Calls queued now."""
        return len(self._calls)

    def put(
        self,
        callback: Callable[..., Any],
        *args: Any,
        size: int = 0,
        path: str | None = None,
        on_lost: Callable[[], Any] | None = None,
    ) -> None:
        """Queue ``callback(*args)`` for the loop; raises `LoopUnavailableError` if it no longer runs.

        ``size`` and ``path``: the bytes of the frame it writes and the path it is for, if it writes
        one (they count against `max_queued`, and as a drop should the loop stop before running it).
        ``on_lost()`` is called, in whichever thread finds it, if the loop stops before running it.
        Past `max_queued`, a thread that runs no loop waits here until the loop has caught up.
        """
        loop = self.loop
        if not loop.is_running():
            self.abandon()
            raise LoopUnavailableError("The loop serving this connection has stopped.")
        weight = CALL_COST + size
        with self._lock:
            if self._weight + weight > self.max_queued and self._calls and running_loop() is None:
                self._wait_for_room(weight)
            self._calls.append((callback, args, weight, path, on_lost))
            self._weight += weight
            if self._scheduled:
                return  # the wake-up already asked for runs this call too
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # closed between the check and now
            self.abandon()
            raise LoopUnavailableError("The loop serving this connection is closed.") from None

    def _wait_for_room(self, weight: int) -> None:
        """Wait (holding the lock between waits) until ``weight`` fits, or the queue is empty."""
        while self._calls and self._weight + weight > self.max_queued:
            self._room.wait(_WAIT_SLICE)
            if not self.loop.is_running():
                raise LoopUnavailableError("The loop serving this connection has stopped.")

    def abandon(self) -> int:
        """The loop stopped: drop every queued call, counting each (frames as drops); returns how many."""
        with self._lock:
            calls, self._calls = self._calls, collections.deque()
            self._weight = 0
            self._scheduled = False
            self._room.notify_all()
        if not calls:
            return 0
        frames: collections.Counter[str] = collections.Counter(
            entry[3] for entry in calls if entry[3] is not None
        )
        for path, count in frames.items():
            delivery.record_drop(delivery.CONNECTION_CLOSED, path, count)
        others = len(calls) - sum(frames.values())
        self.lost += others
        for *_, on_lost in calls:
            if on_lost is not None:
                try:
                    on_lost()
                except Exception:
                    logger.exception("Accounting for a call the loop never ran raised: %r", on_lost)
        logger.warning(
            "%d call(s) handed to %r were never run: it stopped first (%d frame(s) among them)",
            len(calls),
            self.loop,
            len(calls) - others,
        )
        return len(calls)

    def _run(self) -> None:
        with self._lock:
            calls = self._calls
            if len(calls) <= CALLS_PER_WAKE:
                batch, self._calls = calls, collections.deque()
                self._weight = 0
                self._scheduled = False
            else:  # the rest at the next iteration: the loop serves its sockets in between
                batch = collections.deque(calls.popleft() for _ in range(CALLS_PER_WAKE))
                self._weight -= sum(entry[2] for entry in batch)
                self.loop.call_soon(self._run)
            self._room.notify_all()
        for callback, args, *_ in batch:
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

    def lost() -> None:  # the loop stopped with the call still queued
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            future.set_exception(LoopUnavailableError("The loop stopped before running the call."))

    box = inbox(loop)
    box.put(run, on_lost=lost)
    deadline = time.monotonic() + timeout
    while True:
        # In slices: a loop that stops with the call still queued will never run it.
        try:
            return future.result(max(0.0, min(_WAIT_SLICE, deadline - time.monotonic())))
        except concurrent.futures.TimeoutError:
            pass
        if not loop.is_running():
            box.abandon()  # ours among them, if still queued: it fails the future
        if time.monotonic() >= deadline:
            raise TimeoutError(f"The server loop did not run {callback!r} within {timeout}s.")


def asyncio_loop_of(io_loop: IOLoop) -> asyncio.AbstractEventLoop:
    """The asyncio loop under a Tornado ``IOLoop`` (every ``IOLoop`` is an asyncio one since
    Tornado 6, but only that subclass is typed with its ``asyncio_loop``)."""
    if not isinstance(io_loop, BaseAsyncIOLoop):
        raise TypeError(f"{io_loop!r} runs on no asyncio loop: Tornado 6 or later is needed.")
    return io_loop.asyncio_loop


#: The event loops a server can run on: ``TORNADO["loop"]``, ``runtornado --loop``, ``run(loop=...)``.
LOOP_NAMES = ("asyncio", "uvloop")
#: What to do when the uvloop loop is asked for and the package is not installed.
UVLOOP_MISSING = (
    "The 'uvloop' event loop needs the uvloop package: pip install 'django-tornado-websockets[uvloop]' "
    "(Linux and macOS), or use the default loop, 'asyncio'."
)


def check_loop_name(name: object) -> str:
    """``name`` if it names a loop of `LOOP_NAMES`; a `ValueError` naming them otherwise."""
    if not isinstance(name, str) or name not in LOOP_NAMES:
        raise ValueError(f"The event loop should be one of {', '.join(map(repr, LOOP_NAMES))}, not {name!r}.")
    return name


def loop_available(name: str) -> bool:
    """Whether the loop ``name`` can be used here (uvloop: whether the package is installed)."""
    if check_loop_name(name) == "asyncio":
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # a module set to None in sys.modules: not importable
        return False


# The uvloop loop use_loop made for each thread (a second call keeps it rather than orphan the first).
_made_here = threading.local()


def use_loop(name: str) -> asyncio.AbstractEventLoop | None:
    """Make ``name`` the loop the server of this thread runs on; call it before the loop is asked for.

    ``"asyncio"`` changes nothing (Tornado makes or takes this thread's asyncio loop) and returns
    None. ``"uvloop"`` sets a new uvloop loop as this thread's current loop, so that
    ``IOLoop.current()`` wraps it, and returns it; a second call in the same thread keeps the loop
    the first one made (or the uvloop loop running in it).

    :raise ValueError: ``name`` is not one of `LOOP_NAMES`.
    :raise ImportError: uvloop is not installed (the message names the extra).
    :raise RuntimeError: another loop already runs in this thread: it cannot be swapped.
    """
    if check_loop_name(name) == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as error:
        raise ImportError(UVLOOP_MISSING, name="uvloop") from error
    running = running_loop()
    if running is not None:
        if isinstance(running, uvloop.Loop):
            return running
        raise RuntimeError(
            f"An event loop ({type(running).__qualname__}) already runs in this thread: choose the "
            "'uvloop' loop before it starts (TornadoWrapper.run(loop='uvloop') or use_loop before listen)."
        )
    made: asyncio.AbstractEventLoop | None = getattr(_made_here, "loop", None)
    if made is not None and not made.is_closed():
        asyncio.set_event_loop(made)  # listen() twice: one loop per thread, not one per call
        return made
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    _made_here.loop = loop
    logger.debug("Serving on a uvloop event loop: %r", loop)
    return loop
