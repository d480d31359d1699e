"""The typed seams between the layers: what a backplane and its components see of the server.

A `~tornado_websockets.broker.Broker` (and the shared presence, recovery and metrics beside it) is
handed its host, the `~tornado_websockets.server.Server` it serves, when it starts
(``broker.start(host)``), instead of looking up a process-wide facade: two servers in one process,
each with its own backplane, never see each other's paths. Tornado's handler and its protocol talk
through a small delegate the same way.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tornado_websockets.broker import Envelope
    from tornado_websockets.catchup import CatchUp
    from tornado_websockets.websocket import WebSocket

__all__ = ["BrokerHost", "Connection"]


class BrokerHost(Protocol):
    """What a backplane needs from the server it serves (a `~tornado_websockets.server.Server`)."""

    @property
    def websockets(self) -> Mapping[str, WebSocket]:
        """Every path served, by path."""
        ...

    def websocket_for(self, path: str) -> WebSocket | None:
        """The `WebSocket` serving ``path``, or None."""
        ...

    def deliver_envelope(self, envelope: Envelope) -> None:
        """Deliver an envelope from another process to this server's clients (on its loop);
        control envelopes go to the handler the server registered for their kind."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """This server's metrics as plain data (JSON-ready), for sharing with other processes."""
        ...


class Connection(Protocol):
    """One client connection as the backplane and presence see it (a
    `~tornado_websockets.websockethandler.WebSocketHandler`), instead of ``socket: Any``."""

    @property
    def id(self) -> str:
        """Unique among the connections of every process."""
        ...

    @property
    def user_id(self) -> Hashable | None:
        """Who is connected, when known."""
        ...

    @property
    def websocket(self) -> WebSocket:
        """The path it is connected to."""
        ...

    @property
    def catchup(self) -> CatchUp:
        """Its recovery state: where frames numbered by the backplane are written or held."""
        ...

    def backplane_ready(self) -> None:
        """The backplane connected: run the catch-ups that waited for it (safe from any thread)."""
        ...
