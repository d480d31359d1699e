"""The worker threads that run plain ``def`` event functions, guards and (with Django) views.

Why not `concurrent.futures.ThreadPoolExecutor`: its threads are joined when the interpreter
exits, so one event function stuck in a blocking call keeps a stopped server's process alive for
as long as the call lasts; and each call pays for a `concurrent.futures.Future` plus a second
hand-over to the loop to complete it. `WorkerPool` threads are daemon threads (a process exits
once its server has shut down, whatever its functions are doing), and `WorkerPool.run` calls a
plain callback in the worker thread when a call ends. It is still an `Executor`, so
``loop.run_in_executor(pool, ...)`` works as with any other.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DEFAULT_WORKERS", "Done", "WorkerPool"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Worker threads of the default pool.
DEFAULT_WORKERS = 16

#: Called in the worker thread when a call ends: ``done(result, None)`` or ``done(None, error)``.
Done = Callable[[Any, BaseException | None], None]

_Job = tuple[Callable[[], Any], Done]
_counter = itertools.count(1)


class WorkerPool(concurrent.futures.Executor):
    """Up to ``max_workers`` daemon threads, started as calls need them and then kept.

    :param max_workers: how many calls may run at once; more wait in order.
    :param thread_name_prefix: the threads' names start with it.
    :param around: ``around(fn)`` is called in the worker instead of ``fn()`` (Django closes stale
        database connections before and after each call there).
    """

    def __init__(
        self,
        max_workers: int = DEFAULT_WORKERS,
        thread_name_prefix: str = "tornado-websockets",
        around: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers should be a positive int, not {max_workers!r}.")
        self.max_workers = max_workers
        self.thread_name_prefix = thread_name_prefix
        self.around = around
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shutdown = False

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} threads={len(self._threads)} max={self.max_workers}>"

    def run(self, fn: Callable[[], Any], done: Done) -> None:
        """Call ``fn()`` in a worker thread, then ``done`` with its result or its exception there.

        :raise RuntimeError: the pool was shut down.
        """
        if self._shutdown:
            raise RuntimeError("This WorkerPool was shut down: it runs nothing more.")
        self._jobs.put((fn, done))
        if not self._idle.acquire(blocking=False):
            self._add_thread()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Schedule ``fn(*args, **kwargs)``; returns its `concurrent.futures.Future`."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> T:
            if not future.set_running_or_notify_cancel():
                raise concurrent.futures.CancelledError
            return fn(*args, **kwargs)

        def done(result: Any, error: BaseException | None) -> None:
            if future.cancelled():
                return
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        self.run(call, done)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Run nothing more; with ``wait``, wait for the calls under way (never at exit)."""
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[1](None, concurrent.futures.CancelledError())
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                thread.join()

    def _add_thread(self) -> None:
        with self._lock:
            if len(self._threads) >= self.max_workers or self._shutdown:
                return
            thread = threading.Thread(
                target=self._work, name=f"{self.thread_name_prefix}-{next(_counter)}", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        around = self.around
        while (job := self._jobs.get()) is not None:
            fn, done = job
            try:
                result = fn() if around is None else around(fn)
            except BaseException as error:
                _report(done, None, error)
            else:
                _report(done, result, None)
            del job, fn, done
            self._idle.release()


def _report(done: Done, result: Any, error: BaseException | None) -> None:
    try:
        done(result, error)
    except Exception:
        logger.exception("A worker's completion callback raised")
