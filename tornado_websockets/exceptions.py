"""Every error this library raises on purpose.

The whole tree::

    TornadoWebSocketsError
     +-- EmitHandlerError            an emit that can reach nobody
     +-- InvalidInstanceError        an object of the wrong type where ours was expected
     +-- NotCallableError            @ws.on given something that cannot be called
     +-- WebSocketEventAlreadyBinded an event name bound twice on one path
     +-- PathAlreadyRegistered       a second WebSocket for a path that one serves already
     +-- ProtocolError               a client frame that cannot be decoded (also a ValueError)
     +-- EventError                  raised by an event function: its message is sent to the client
     +-- ConnectionDenied            raised by a connect guard: the upgrade is refused with a status
     +-- PayloadError                a frame's data does not match its event function's annotation

Each exception keeps its constructor arguments as attributes and builds its own message, so
``str(error)`` explains the fault and says how to fix it.
"""

from __future__ import annotations

from typing import Any


class TornadoWebSocketsError(Exception):
    """Base class of every exception raised by tornado_websockets."""


class EmitHandlerError(TornadoWebSocketsError):
    """``emit`` was called where no client can be reached: no server loop runs in this process."""

    def __init__(self, event: str, path: str) -> None:
        self.event = event
        self.path = path
        super().__init__(event, path)

    def __str__(self) -> str:
        return (
            f'Cannot emit "{self.event}" on "{self.path}": no Tornado server loop is running in this '
            "process. Emit from an event function, or start the server first "
            "(TornadoWrapper.start_app(), listen() and loop(), or `manage.py runtornado`)."
        )


class InvalidInstanceError(TornadoWebSocketsError):
    """An object of the wrong class was given where an instance of ours was expected."""

    def __init__(self, actual_instance: Any, expected_instance_name: str) -> None:
        self.actual_instance = actual_instance
        self.expected_instance_name = expected_instance_name
        super().__init__(actual_instance, expected_instance_name)

    def __str__(self) -> str:
        return (
            f"Expected an instance of {self.expected_instance_name}, "
            f"got {type(self.actual_instance).__qualname__}: {self.actual_instance!r}."
        )


class NotCallableError(TornadoWebSocketsError):
    """``@ws.on`` was given something that is not a function or a method."""

    def __init__(self, thing: Any) -> None:
        self.thing = thing
        super().__init__(thing)

    def __str__(self) -> str:
        return (
            f"Cannot bind {self.thing!r} ({type(self.thing).__qualname__}) as an event: it is not "
            "callable. Decorate a function or a method with @ws.on, or name the event with "
            '@ws.on(name="...").'
        )


class WebSocketEventAlreadyBinded(TornadoWebSocketsError):  # noqa: N818 - public name since 0.x
    """An event name is already bound on this WebSocket path."""

    def __init__(self, event: str, path: str) -> None:
        self.event = event
        self.path = path
        super().__init__(event, path)

    def __str__(self) -> str:
        return (
            f'The event "{self.event}" is already bound on "{self.path}". Rename the function, '
            'or bind it under another name with @ws.on(name="...").'
        )


class PathAlreadyRegistered(TornadoWebSocketsError):  # noqa: N818 - named like WebSocketEventAlreadyBinded
    """A second `WebSocket` was made for a path that another one serves already."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(path)

    def __str__(self) -> str:
        return (
            f'A WebSocket already serves "{self.path}". Bind more events on that one '
            f'(import it), or pass WebSocket("{self.path}", replace=True) to replace it on purpose.'
        )


class ProtocolError(TornadoWebSocketsError, ValueError):
    """A frame from a client could not be understood; ``message`` is what the client is told.

    ``frame_id`` is the frame's ``id`` when it had a valid one, so the request still gets a reply.
    """

    def __init__(self, message: str, frame_id: int | str | None = None) -> None:
        self.message = message
        self.frame_id = frame_id
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class EventError(TornadoWebSocketsError):
    """Raise it in an event function to tell the client what went wrong, in your own words.

    The message goes to the client (as the ``error`` event, or the ``ack`` reply of a request) and
    nothing is logged as a server fault. Any other exception is logged and the client only learns
    that the event failed.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class ConnectionDenied(TornadoWebSocketsError):  # noqa: N818 - a refusal, like abort(), not a fault
    """Raise it in a connect guard to refuse the upgrade with an HTTP ``status`` (403 by default)."""

    def __init__(self, status: int = 403, reason: str | None = None) -> None:
        self.status = status
        self.reason = reason
        super().__init__(status, reason)

    def __str__(self) -> str:
        return f"Connection refused with HTTP {self.status}" + (f": {self.reason}" if self.reason else ".")


class PayloadError(TornadoWebSocketsError, ValueError):
    """A frame's data does not match the event function's annotation; the function is not called.

    ``path`` locates the faulty field (``data.age``) and ``reason`` says what is wrong with it.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(path, reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"
