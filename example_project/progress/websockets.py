"""The progress page's WebSocket: a long task reports each step to every client with a ProgressBar.

A client emits ``start``; the task runs in a worker thread (a plain ``def`` event function does),
so it may sleep, or use the ORM, without holding up any other connection. A client that opens the
page mid-task is sent the bar's current state at once.
"""

import threading
import time

from tornado_websockets import ProgressBar, WebSocket, WebSocketHandler

STEPS = 50
STEP_SECONDS = 0.06  # about 3 seconds in all

progress = WebSocket("/progress")
bar = ProgressBar("demo", min=0, max=STEPS)
progress.bind(bar)  # its events: module_progressbar_demo_init, _update and _done

_task = threading.Lock()


@progress.on
def start(socket: WebSocketHandler) -> None:
    """Run the task, unless it runs already: then every page simply watches that run."""
    if not _task.acquire(blocking=False):
        return
    try:
        bar.reset()
        for _ in range(STEPS):
            time.sleep(STEP_SECONDS)  # the work of one step
            bar.tick()  # no label: the page shows the percentage, as on open and after a reload
    finally:
        _task.release()
