"""Several server processes on one port: fork workers that share listening sockets bound beforehand.

The parent only supervises. It restarts a worker that dies unexpectedly and, on SIGINT or
SIGTERM, passes SIGTERM on to every worker (each shuts down gracefully) and exits once they all
have. Unlike ``tornado.process.fork_processes``, stopping the parent stops the workers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from types import FrameType

__all__ = ["MAX_RESTARTS", "fork_workers", "worker_count"]

logger = logging.getLogger(__name__)

#: Unexpected worker deaths the parent repairs before it gives up and stops everything.
MAX_RESTARTS = 100


def worker_count(processes: int) -> int:
    """The number of workers ``processes`` asks for: itself, or one per CPU for 0.

    :raise ValueError: ``processes`` is negative or not an int.
    """
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 0:
        raise ValueError(f"processes should be an int, 1 or more (0: one per CPU), not {processes!r}.")
    return processes or os.cpu_count() or 1


def fork_workers(count: int, max_restarts: int = MAX_RESTARTS) -> int:
    """Fork ``count`` workers; in each, return its number (0 to ``count - 1``).

    Call it before any event loop or thread exists. In the parent it never returns: the parent
    exits (status 0 when every worker ended cleanly) once its workers have.
    """
    parent = os.getpid()
    workers: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if os.getpid() != parent:  # a worker between fork() and resetting its handlers
            return
        stopping = True
        logger.info("Received %s: stopping %d workers", signal.Signals(signum).name, len(workers))
        for pid in list(workers):
            _signal(pid, signal.SIGTERM)

    # Installed before forking, so that a signal arriving meanwhile is not lost.
    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}

    def spawn(number: int) -> bool:
        pid = os.fork()
        if pid == 0:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            return True
        workers[pid] = number
        if stopping:  # the signal came between fork() and the line above
            _signal(pid, signal.SIGTERM)
        return False

    for number in range(count):
        if spawn(number):
            return number
    logger.info("Started %d workers: %s", count, sorted(workers))
    restarts = 0
    failed = False
    while workers:
        pid, status = os.wait()
        if pid not in workers:
            continue
        number = workers.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if stopping or code == 0:
            failed = failed or code not in (0, -signal.SIGTERM)
            continue
        logger.warning("Worker %d (pid %d) died with status %d", number, pid, code)
        restarts += 1
        if restarts > max_restarts:
            logger.error("%d workers died: stopping", restarts)
            failed = stopping = True
            for other in list(workers):
                _signal(other, signal.SIGTERM)
            continue
        if spawn(number):
            return number
    sys.exit(1 if failed else 0)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone; os.wait() will tell
        os.kill(pid, signum)
