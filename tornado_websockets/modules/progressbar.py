"""ProgressBar: report a long task's progress live to every client of a path."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from tornado_websockets.modules.module import Module

if TYPE_CHECKING:
    from tornado_websockets.websockethandler import WebSocketHandler

__all__ = ["BarState", "BarUpdate", "ProgressBar"]


class BarState(TypedDict):
    """What ``init`` sends: the bounds and the current value, or only ``indeterminate: true``."""

    indeterminate: bool
    min: NotRequired[int]
    max: NotRequired[int]
    current: NotRequired[int]


class BarUpdate(TypedDict):
    """What ``update`` sends."""

    current: NotRequired[int]
    label: NotRequired[str]


class ProgressBar(Module):
    """A progress bar whose ``init``, ``update`` and ``done`` events drive a client-side bar.

    Events are named ``module_progressbar_<name>_init``, ``..._update`` and ``..._done``; a client
    that connects mid-task receives ``init`` with the current value at once.

    :param name: distinguishes several progress bars on one path.
    :param min: the starting value.
    :param max: the value at which the task is done.
    :param indeterminate: no value, only activity (``is_done`` is then always False).
    :raise ValueError: ``min`` is greater than ``max``.
    """

    def __init__(self, name: str = "", min: int = 0, max: int = 100, indeterminate: bool = False) -> None:  # noqa: A002
        if min > max:
            raise ValueError(f"ProgressBar min ({min}) should not be greater than max ({max}).")
        super().__init__("progressbar_" + name + "_")
        self.min = min
        self.max = max
        self.current = min
        self.indeterminate = indeterminate
        # Long tasks tick from worker threads: each step's value and its update leave together.
        self._lock = threading.Lock()

    def initialize(self) -> None:
        """Declare the bar's events (it binds none: clients only listen)."""
        self.emits("init", BarState, "The bar's bounds and value: sent on connect and when a run starts.")
        self.emits("update", BarUpdate, "One step done: the new value, and the step's label if any.")
        self.emits("done", None, "The bar reached max: the task is done.")

    def on_open(self, socket: WebSocketHandler) -> None:
        """Send the new client the bar's current state."""
        socket.emit(self.name + "init", self.state())

    def state(self) -> dict[str, Any]:
        """What ``init`` sends: the bounds and current value, or only the indeterminate flag."""
        if self.indeterminate:
            return {"indeterminate": True}
        return {"indeterminate": False, "min": self.min, "max": self.max, "current": self.current}

    def reset(self) -> None:
        """Go back to ``min`` and tell the clients (``init``)."""
        with self._lock:
            self.current = self.min
            self.emit("init", self.state())

    def tick(self, label: str | None = None) -> None:
        """Advance by one and emit ``update`` (with ``label`` if given), then ``done`` on reaching ``max``.

        A tick past ``max`` emits the ``update`` again but not ``done``: a run is done once.
        """
        with self._lock:
            was_done = self.is_done()
            if not self.indeterminate and self.current < self.max:
                self.current += 1
            data: dict[str, Any] = {} if self.indeterminate else {"current": self.current}
            if label is not None:
                data["label"] = label
            self.emit("update", data)
            if self.is_done() and not was_done:
                self.emit("done")

    def is_done(self) -> bool:
        """True when a determinate bar has reached ``max``."""
        return not self.indeterminate and self.current >= self.max
