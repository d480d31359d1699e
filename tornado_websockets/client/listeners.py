"""The client's listeners: ``on`` / ``once`` / ``off``, plain or async functions, typed or not.

A listener whose first parameter is annotated (a dataclass, a TypedDict, a msgspec Struct, a pydantic
model) gets the data validated and converted by `tornado_websockets.typed`, the server's own machinery;
data that does not fit is logged and counted, and that listener is skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import typing
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tornado_websockets.client.errors import ClientUsageError
from tornado_websockets.exceptions import PayloadError
from tornado_websockets.typed import Converter, converter_for, resolved_hint

__all__ = ["Listener", "Listeners"]

logger = logging.getLogger(__name__)

Callback = Callable[..., Any]

_UNTYPED = (Any, dict, Mapping, object)


def _converter(callback: Callback) -> Converter | None:
    """The converter of ``callback``'s first parameter's annotation; None when it asks for none."""
    try:
        parameters = list(inspect.signature(callback).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: called with the raw data
        return None
    if not parameters:
        return None
    annotation = resolved_hint(callback, parameters[0].name)
    if annotation is None or annotation in _UNTYPED or typing.get_origin(annotation) in (dict, Mapping):
        return None
    return converter_for(annotation)


def _arity(callback: Callback) -> int:
    """How many positional arguments ``callback`` takes: 0, 1 (the data) or 2 (the data and the frame)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return 1
    count = 0
    for parameter in parameters:
        if parameter.kind == parameter.VAR_POSITIONAL:
            return 2
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return min(count, 2)


@dataclass(eq=False, slots=True)
class Listener:
    """One registration: the function, whether it runs once, how its data is converted, how it is called."""

    callback: Callback
    once: bool
    convert: Converter | None = field(default=None)
    arity: int = 1


class Listeners:
    """Listeners by event name, called in the order they were added."""

    def __init__(self, counts: Counter[str]) -> None:
        self._by_event: dict[str, list[Listener]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counts = counts

    def __repr__(self) -> str:
        return f"<Listeners events={sorted(self._by_event)}>"

    def add(self, event: str, callback: Callback, once: bool) -> None:
        """Register ``callback`` for ``event``."""
        if not isinstance(event, str) or not event:
            raise ClientUsageError(f"An event name should be a non-empty str, not {event!r}.")
        if not callable(callback):
            raise ClientUsageError(f"A listener should be a function, not {type(callback).__qualname__}.")
        listener = Listener(callback, once, _converter(callback), _arity(callback))
        self._by_event.setdefault(event, []).append(listener)

    def remove(self, event: str | None, callback: Callback | None) -> None:
        """Remove ``callback`` from ``event``; without callback, every listener of it; without both, all."""
        if event is None:
            self._by_event.clear()
        elif callback is None:
            self._by_event.pop(event, None)
        else:
            kept = [entry for entry in self._by_event.get(event, []) if entry.callback != callback]
            self._by_event[event] = kept

    def has(self, event: str) -> bool:
        """Whether anything listens to ``event``."""
        return bool(self._by_event.get(event))

    def dispatch(self, event: str, data: Any, frame: Any = None) -> None:
        """Call every listener of ``event``; a coroutine function runs as a task of its own."""
        entries = self._by_event.get(event)
        if not entries:
            return
        for entry in list(entries):
            current = self._by_event.get(event)
            if current is None or entry not in current:
                continue  # removed by an earlier listener of this same event
            if entry.once:
                current.remove(entry)
            self._call(entry, event, data, frame)

    def _call(self, entry: Listener, event: str, data: Any, frame: Any) -> None:
        value = data
        if entry.convert is not None:
            try:
                value = entry.convert(data if isinstance(data, dict) else {})
            except PayloadError as error:
                self._counts["payload_error"] += 1
                logger.warning('The data of "%s" does not fit %r: %s', event, entry.callback, error)
                return
        arguments = (value, frame)[: entry.arity]
        try:
            result = entry.callback(*arguments)
        except Exception:
            logger.exception('A listener of "%s" failed', event)
            return
        if inspect.isawaitable(result):
            self._start(event, result)

    def _start(self, event: str, awaitable: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                logger.exception('A listener of "%s" failed', event)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)  # a reference, so that the task is not collected while it runs
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the async listeners still running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
