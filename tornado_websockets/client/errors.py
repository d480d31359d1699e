"""What the Python client raises on purpose.

The whole tree (under the library's root, `TornadoWebSocketsError`)::

    ClientError
     +-- ClientUsageError       a wrong argument (also TypeError and ValueError): the message names the fix
     +-- ConnectionEnded        the server closed for good (4000-4099, 1008): no retry
     +-- ConnectionUnreachable  ``refused_after`` attempts in a row never opened (a guard's 403, server down)
     +-- ConnectionLost         the connection closed before a request's reply, or the client was closed
     +-- RequestFailed          the server's event function failed: its message
     +-- RequestTimeout         no reply within the timeout (also a TimeoutError)
     +-- RequestDropped         the request was pushed out of the full outbox

Each keeps its data as attributes and builds its own message.
"""

from __future__ import annotations

from tornado_websockets.exceptions import TornadoWebSocketsError

__all__ = [
    "ClientError",
    "ClientUsageError",
    "ConnectionEnded",
    "ConnectionLost",
    "ConnectionUnreachable",
    "RequestDropped",
    "RequestFailed",
    "RequestTimeout",
]


class ClientError(TornadoWebSocketsError):
    """Base class of the client's own errors."""


class ClientUsageError(ClientError, TypeError, ValueError):
    """A wrong argument to the client: the message says what to pass instead."""


class ConnectionEnded(ClientError):  # noqa: N818 - named after what happened, like ConnectionDenied
    """The server closed the connection for good (close code 4000-4099 or 1008): the client does not retry."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(code, reason)

    def __str__(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return (
            f"The server ended the connection for good (close code {self.code}{why}). "
            "The client does not reconnect by itself: call connect() once the cause is dealt with."
        )


class ConnectionUnreachable(ClientError):  # noqa: N818 - as the JavaScript client's event
    """``attempts`` connections in a row never opened; ``status`` is the HTTP status of the last refusal."""

    def __init__(self, attempts: int, status: int | None, cause: str) -> None:
        self.attempts = attempts
        self.status = status
        self.cause = cause
        super().__init__(attempts, status, cause)

    def __str__(self) -> str:
        if self.status == 403:
            hint = "the server refused the upgrade (403: a connect guard, a missing session cookie?)"
        elif self.status is not None:
            hint = f"the server answered HTTP {self.status} instead of upgrading"
        else:
            hint = f"no server answered ({self.cause})"
        return f"{self.attempts} connection attempts in a row never opened: {hint}."


class ConnectionLost(ClientError):  # noqa: N818 - named after what happened
    """The connection closed before the reply could arrive (or the client was closed)."""

    def __init__(self, event: str) -> None:
        self.event = event
        super().__init__(event)

    def __str__(self) -> str:
        if not self.event:
            return "The client is closed (close(), or reconnect=False after a drop): call connect() again."
        return f'The connection closed before the reply to "{self.event}": send the request again.'


class RequestFailed(ClientError):  # noqa: N818 - named after what happened
    """The server's event function failed; ``message`` is what the server said."""

    def __init__(self, message: str, event: str | None) -> None:
        self.message = message
        self.event = event
        super().__init__(message, event)

    def __str__(self) -> str:
        return self.message


class RequestTimeout(ClientError, TimeoutError):  # noqa: N818 - like TimeoutError
    """No reply to a request within its timeout."""

    def __init__(self, event: str, timeout: float) -> None:
        self.event = event
        self.timeout = timeout
        super().__init__(event, timeout)

    def __str__(self) -> str:
        return (
            f'No reply to "{self.event}" within {self.timeout:g} s: is the event bound on that path, '
            "and does its function return? Pass a longer timeout= if it takes longer."
        )


class RequestDropped(ClientError):  # noqa: N818 - named after what happened
    """The request waited in the outbox while disconnected and was pushed out by newer frames."""

    def __init__(self, event: str, size: int) -> None:
        self.event = event
        self.size = size
        super().__init__(event, size)

    def __str__(self) -> str:
        return (
            f'The request "{self.event}" was dropped from the full outbox ({self.size} frames) while '
            "disconnected: pass a larger outbox= or wait for the connection."
        )
