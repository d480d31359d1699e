"""How an event function is called: which arguments it asks for, and whether it is a coroutine.

Inspected once at registration, so dispatching a frame costs a dict lookup and a call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tornado_websockets.typed import Converter, converter_for, payload_type, reply_encoder

__all__ = ["RESERVED_EVENTS", "EventFunction", "is_async_callable"]

#: Events run by the server itself on connect and disconnect; a client cannot send them.
RESERVED_EVENTS = frozenset({"open", "close"})


def is_async_callable(function: Callable[..., Any]) -> bool:
    """True for ``async def`` functions and for objects whose ``__call__`` is ``async def``."""
    if inspect.iscoroutinefunction(function):
        return True
    if inspect.isfunction(function) or inspect.ismethod(function):
        return False
    return inspect.iscoroutinefunction(getattr(function, "__call__", None))  # noqa: B004


@dataclass(frozen=True, slots=True)
class EventFunction:
    """A registered event function and the calling convention read from its signature."""

    name: str
    callback: Callable[..., Any]
    wants_self: bool
    wants_socket: bool
    wants_data: bool
    is_async: bool
    #: Validates and converts ``data`` from its annotation; None when ``data`` is untyped.
    converter: Converter | None = None
    #: The annotation of ``data`` when it is typed.
    payload: Any = None
    #: Checks a reply against the return annotation and makes it plain data; None when untyped.
    reply: Converter | None = None
    #: A plain ``def`` that may block runs in a worker thread; False runs it on the loop.
    blocking: bool = True
    #: An ``async def`` whose task is cancelled when its connection closes.
    cancel_on_close: bool = False

    @classmethod
    def inspect(
        cls, name: str, callback: Callable[..., Any], blocking: bool = True, cancel_on_close: bool = False
    ) -> EventFunction:
        """Read which of ``self``, ``socket`` and ``data`` the callback takes."""
        try:
            parameters = inspect.signature(callback).parameters
        except (TypeError, ValueError):  # some builtins have no signature: call them bare
            parameters = {}  # type: ignore[assignment]
        names = set(parameters)
        payload = payload_type(callback) if "data" in names else None
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        return cls(
            name=name,
            callback=callback,
            wants_self="self" in names,
            wants_socket="socket" in names or takes_kwargs,
            wants_data="data" in names or takes_kwargs,
            is_async=is_async_callable(callback),
            converter=None if payload is None else converter_for(payload),
            payload=payload,
            reply=reply_encoder(callback),
            blocking=blocking,
            cancel_on_close=cancel_on_close,
        )

    def arguments(self, context: Any, socket: Any, data: Any) -> dict[str, Any]:
        """The keyword arguments for one call."""
        kwargs: dict[str, Any] = {}
        if self.wants_self:
            kwargs["self"] = context
        if self.wants_socket:
            kwargs["socket"] = socket
        if self.wants_data:
            kwargs["data"] = data
        return kwargs
