"""Emit from a process that runs no server (a cron script, a Celery task): through the backplane.

::

    from tornado_websockets import Emitter

    with Emitter("redis://127.0.0.1:6379/0") as emitter:
        emitter.emit("/chat", "news", {"title": "Release 2.0"}, room="lobby")

Every server process subscribed to the backplane delivers the frame to its own clients of the
path (or of the room). The process needs no `~tornado_websockets.websocket.WebSocket` object:
the path is enough. The frame is encoded here, once, exactly as ``ws.emit`` encodes it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tornado_websockets import protocol
from tornado_websockets.backplanes import broker_from_url
from tornado_websockets.broker import Broker, Envelope

if TYPE_CHECKING:
    from tornado_websockets.redis.publisher import SyncPublisher

__all__ = ["Emitter"]


class Emitter:
    """Publishes emits to the server processes of a backplane; sync, safe from several threads.

    :param url: the backplane the servers use, ``redis://host:port/db`` (with ``?channel=`` if they
        set one).
    :param channel: the channel, overriding the URL's.
    :raise ValueError: ``url`` is not a cross-process backplane (``memory://`` reaches nobody).
    :raise ImportError: the ``redis`` extra is not installed.
    """

    def __init__(self, url: str, channel: str | None = None) -> None:
        broker = broker_from_url(url)
        if not broker.cross_process:
            raise ValueError(
                f"An Emitter reaches server processes through a backplane such as "
                f"redis://127.0.0.1:6379/0; {url!r} reaches no other process."
            )
        #: The broker the URL names (never started: the emitter publishes through `publisher`).
        self.broker: Broker = broker
        #: Publishes through the broker's Redis, on its channel (or ``channel``).
        self.publisher: SyncPublisher = _publisher(broker, channel)
        #: Marks the envelopes of this emitter; no server process has this id, so none skips them.
        self.id = uuid.uuid4().hex

    def __repr__(self) -> str:
        return f"<Emitter {self.broker!r}>"

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def emit(
        self,
        path: str,
        event: str,
        data: dict[str, Any] | str | None = None,
        *,
        room: str | None = None,
        skip: str | None = None,
    ) -> int:
        """Send ``{"event": event, "data": data}`` to every client of ``path`` (or of its ``room``).

        ``path`` is the `WebSocket`'s path as declared (``"/chat"``, ``"/room/<name>"``). ``data``
        follows the rule of ``ws.emit``: a ``str`` is sent as ``{"message": data}``, ``None`` as
        ``{}``. ``skip`` is the id of a connection to leave out.

        Returns how many server processes received the frame; 0 when none is subscribed or when
        Redis cannot be reached (then the frame is counted as dropped, see
        `tornado_websockets.delivery`).

        :raise TypeError: ``event`` is not a str, ``data`` not a dict, str or None, or ``room`` empty.
        """
        if not isinstance(path, str):
            raise TypeError(f"path should be a str such as '/chat', not {type(path).__qualname__}.")
        if room is not None and (not isinstance(room, str) or not room):
            raise TypeError(f"room should be a non-empty str, not {room!r}.")
        if skip is not None and not isinstance(skip, str):
            raise TypeError(f"skip should be a connection id (a str), not {type(skip).__qualname__}.")
        path = path.strip()  # as WebSocket normalizes its own path
        path = path if path.startswith("/") else "/" + path
        frame = protocol.encode_emit(event, data)
        return self.publisher.publish(Envelope(path, frame, room, skip, self.id))

    def close(self) -> None:
        """Close the connection to Redis (a later `emit` opens a new one)."""
        self.publisher.close()


def _publisher(broker: Broker, channel: str | None) -> SyncPublisher:
    """A publisher to where ``broker`` publishes; every cross-process broker here is a Redis one."""
    # Here, not at the top: the redis package is an optional extra, and this module is imported
    # by the package itself; broker_from_url has imported it already for a Redis URL.
    from tornado_websockets.redis.broker import RedisBroker
    from tornado_websockets.redis.publisher import SyncPublisher

    if not isinstance(broker, RedisBroker):
        raise TypeError(f"An Emitter publishes through Redis; {broker!r} is not a Redis backplane.")
    return SyncPublisher(broker.url, channel or broker.channel, broker.channels, broker.timeout)
