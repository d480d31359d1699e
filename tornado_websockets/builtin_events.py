"""The events the library itself sends to clients, declared for the AsyncAPI document and the explorer.

Every path sends ``warning`` (a frame it could not use), ``error`` (an event function failed),
``ack`` (the reply to a request) and ``pong`` (the answer to the JavaScript client's liveness
probe ``ping``, unless the path binds ``ping`` itself); a path with ``presence_events=True``
sends ``joined`` and ``left``; a path with ``recover=...`` sends ``stream`` and ``resync``. A
module declares its own events (see `tornado_websockets.modules.Module.emits`), an application
its own with ``ws.emits``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from tornado_websockets import protocol
from tornado_websockets.protocol import (
    JOINED_EVENT,
    LEFT_EVENT,
    PING_EVENT,
    PONG_EVENT,
    RESYNC_EVENT,
    STREAM_EVENT,
)

if TYPE_CHECKING:
    from tornado_websockets.websocket import WebSocket

__all__ = ["ACK_DESCRIPTION", "declared"]

#: The ``ack`` frame carries ``id`` and ``data`` or ``error`` beside ``event``: the AsyncAPI document
#: describes it as it describes the reply of a request.
ACK_DESCRIPTION = (
    "The reply to a request (a frame sent with an id): the event function's return value as data, "
    "or an error with its message."
)


class WarningData(TypedDict):
    """A frame the server could not use: not JSON, no event, an unknown event, bad data, too fast."""

    message: str
    event: NotRequired[str]
    path: NotRequired[str]
    reason: NotRequired[str]


class ErrorData(TypedDict):
    """An event function failed: what ``EventError`` said, or only that the event failed."""

    message: str
    event: str


class PresenceMember(TypedDict):
    """A user whose first connection joined the room (``joined``) or whose last one left (``left``)."""

    room: str
    user: Any
    name: str


class StreamPosition(TypedDict):
    """Where the client stands in a stream (a room, or the whole path), to recover after a drop."""

    stream: str
    seq: NotRequired[int]
    epoch: NotRequired[str]
    token: NotRequired[str]
    left: NotRequired[bool]


class EmptyData(TypedDict):
    """No data."""


class ResyncData(TypedDict):
    """The frames the client missed in a stream are no longer kept: reload your state."""

    stream: str


def declared(websocket: WebSocket) -> dict[str, tuple[Any, str]]:
    """Event name -> (payload type, description) of what the library sends on ``websocket``'s path.

    ``ack`` has no payload type: see `ACK_DESCRIPTION`.
    """
    events: dict[str, tuple[Any, str]] = {
        protocol.WARNING_EVENT: (WarningData, _doc(WarningData)),
        protocol.ERROR_EVENT: (ErrorData, _doc(ErrorData)),
        protocol.ACK_EVENT: (None, ACK_DESCRIPTION),
    }
    if PING_EVENT not in websocket.events:
        events[PONG_EVENT] = (
            EmptyData,
            'The answer to "ping", the JavaScript client\'s liveness probe (a path that binds no "ping").',
        )
    if websocket.presence_events:
        events[JOINED_EVENT] = (PresenceMember, "A user's first connection joined a room of yours.")
        events[LEFT_EVENT] = (PresenceMember, "A user's last connection left a room of yours.")
    if websocket.replay is not None:
        events[STREAM_EVENT] = (StreamPosition, _doc(StreamPosition))
        events[RESYNC_EVENT] = (ResyncData, _doc(ResyncData))
    return events


def _doc(payload: type) -> str:
    return (payload.__doc__ or "").strip()
