"""``runtornado`` under Django's autoreloader, keeping the graceful SIGINT/SIGTERM shutdown.

Django's reloader runs the command in a child process, in a second thread, and on SIGTERM the
child exits at once while the parent kills it: every WebSocket would drop (1006) instead of
closing with 1001, and the clients would not know the server went away on purpose. Here the
parent passes SIGINT and SIGTERM on to the child and waits for it; the child closes the server
with `TornadoWrapper.shutdown` before it exits. A code change still restarts the child (exit
code 3), as with ``runserver``, after closing every WebSocket with `RESTART_CLOSE_CODE` (1012,
"service restart"): the JavaScript client reconnects at once instead of seeing a drop (1006).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.utils import autoreload

from tornado_websockets.tornadowrapper import SHUTDOWN_GRACE, TornadoWrapper

__all__ = ["RESTART_CLOSE_CODE", "run_with_reloader"]

logger = logging.getLogger(__name__)

#: The exit code with which Django's reloader asks its parent for a restart.
RESTART = 3
#: Close code of the WebSockets of a server restarting for a code change: 1012, "service restart".
RESTART_CLOSE_CODE = 1012
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_with_reloader(main: Callable[..., None], **options: Any) -> None:
    """Run ``main(**options)`` in a child process restarted on every code change.

    Returns (in the child) or exits (in the parent) once a signal has shut the server down.
    """
    if os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true":
        _serve(main, options)
    else:
        sys.exit(_supervise())


def _supervise() -> int:
    """The parent: start the child again while it asks for a restart; pass signals on to it."""
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for signum in _SIGNALS:
        signal.signal(signum, forward)
    environment = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true"}
    while True:
        child = subprocess.Popen(autoreload.get_child_arguments(), env=environment, close_fds=False)
        code = child.wait()
        if code != RESTART or stopping:
            return code


def _serve(main: Callable[..., None], options: dict[str, Any]) -> None:
    """The child: the server runs in a thread, file watching in this one, signals land here."""
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # Ctrl-C reaches the child twice: from the terminal and from the parent
            return
        stopping = True
        # The second copy may land after sys.exit() below has begun tearing the interpreter down,
        # when this handler is gone: ignore it outright, or it would kill the process (exit -2).
        for other in _SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        logger.info("Received %s, shutting down", signal.Signals(signum).name)
        shut_down_server()
        sys.exit(0)

    for signum in _SIGNALS:
        signal.signal(signum, on_signal)
    # Django's reloader calls this module-level function (by its global name) once a file changed
    # and no file_changed receiver claimed it (a template change does not restart): the hook where
    # a restart is certain.
    exit_for_reload = autoreload.trigger_reload

    def trigger_reload(filename: str) -> None:
        close_for_restart()
        exit_for_reload(filename)

    autoreload.trigger_reload = trigger_reload
    reloader = autoreload.get_reloader()
    logger.info("Watching for file changes with %s", type(reloader).__name__)
    autoreload.start_django(reloader, main, **options)


def close_for_restart() -> None:
    """From a thread other than the server's: close every WebSocket with 1012, then shut down."""
    if TornadoWrapper.io_loop is None:
        return

    def close_all() -> None:
        for connection in TornadoWrapper.live_connections():
            connection.close(RESTART_CLOSE_CODE, "Server restarting")

    logger.info("Restarting: closing the WebSockets with %d", RESTART_CLOSE_CODE)
    TornadoWrapper.call_in_loop(close_all)  # before the shutdown's 1001, queued after it
    shut_down_server()


def shut_down_server(timeout: float = SHUTDOWN_GRACE + 5) -> None:
    """From a thread other than the server's: close every WebSocket with 1001, then stop the loop."""
    io_loop = TornadoWrapper.io_loop
    if io_loop is None:
        return
    shutdown = asyncio.run_coroutine_threadsafe(
        TornadoWrapper.shutdown(),
        io_loop.asyncio_loop,  # type: ignore[attr-defined]
    )
    try:
        shutdown.result(timeout)
    except Exception:
        logger.exception("The server did not shut down cleanly")
    TornadoWrapper.stop()
