"""The backplane carrying emits between server processes: the `Broker` interface, in-process default.

Delivery is local first, then published: a process delivers an emit to its own clients, then hands
the `Envelope` to the broker, whose other processes deliver it to theirs. The frame inside is
encoded once, by the process that emitted it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from tornado_websockets import codec
from tornado_websockets.presence import Member
from tornado_websockets.recovery import BROADCAST_STREAM
from tornado_websockets.recovery_redis import SharedReplay

__all__ = ["CONTROL_HANDLERS", "Broker", "Envelope", "broker_from_url", "on_control"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One emit on its way to the clients: where it goes, and the frame already encoded."""

    path: str
    frame: bytes
    room: str | None = None
    skip: str | None = None  # the id of a connection that must not receive it (the sender)
    origin: str = ""  # the id of the broker that published it, so it does not deliver it twice
    #: The number the backplane gave the frame in its stream (shared recovery); the frame carries
    #: it already. Every process delivers a numbered envelope, the one that published it included.
    seq: int | None = None
    #: To be numbered by the backplane before anyone delivers it (a path with shared recovery).
    numbered: bool = False
    #: Not an emit but a request to every process, of this kind (see `on_control`); ``frame``
    #: holds its JSON arguments.
    control: str | None = None

    def header(self) -> bytes:
        """The JSON header line of `pack`, without its newline."""
        fields: dict[str, Any] = {"p": self.path, "r": self.room, "s": self.skip, "o": self.origin}
        if self.seq is not None:
            fields["q"] = self.seq
        if self.control is not None:
            fields["c"] = self.control
        return codec.dumps(fields)

    def pack(self) -> bytes:
        """Bytes for the wire: a JSON header line, then the frame as it is."""
        return self.header() + b"\n" + self.frame

    @property
    def stream(self) -> str:
        """The recovery stream the frame belongs to: its room, or ``"*"`` for the whole path."""
        return BROADCAST_STREAM if self.room is None else self.room

    @classmethod
    def unpack(cls, data: bytes) -> Envelope:
        """The reverse of `pack`; raises ValueError on anything else."""
        header, separator, frame = data.partition(b"\n")
        if not separator:
            raise ValueError("not an envelope: no header line")
        fields = codec.loads(header)
        if not isinstance(fields, dict) or not isinstance(fields.get("p"), str):
            raise ValueError("not an envelope: bad header")
        seq = fields.get("q")
        control = fields.get("c")
        return cls(
            fields["p"],
            frame,
            fields.get("r"),
            fields.get("s"),
            fields.get("o") or "",
            seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            control=control if isinstance(control, str) else None,
        )


Deliver = Callable[[Envelope], None]

#: What a control envelope asks of this process, by kind: called on the loop with its ``frame``.
CONTROL_HANDLERS: dict[str, Callable[[bytes], None]] = {}


def on_control(kind: str, handler: Callable[[bytes], None]) -> None:
    """Handle the control envelopes of ``kind`` that other processes publish (called on the loop),
    for every server of the process. Deprecated: register on a server, ``Server.on_control``."""
    CONTROL_HANDLERS[kind] = handler


def _routing_controls(deliver: Deliver) -> Deliver:
    """``deliver``, except for control envelopes of a kind registered with the deprecated
    `on_control`: those go to their handler (the server routes the others, see
    ``Server.on_control``)."""

    def route(envelope: Envelope) -> None:
        handler = CONTROL_HANDLERS.get(envelope.control) if envelope.control is not None else None
        if handler is None:
            deliver(envelope)
            return
        handler(envelope.frame)

    return route


class Broker:
    """The default broker: one process, nothing to set up, nothing leaves the process.

    Subclasses that reach other processes set `cross_process` and implement `start`, `publish`,
    `publish_sync` and `stop`.
    """

    #: True when emits reach the clients of other processes.
    cross_process: ClassVar[bool] = False
    #: True when the broker numbers and keeps the frames of recovering paths for every process
    #: (see `tornado_websockets.recovery_redis`); else each process numbers what it delivers.
    shares_replay: ClassVar[bool] = False

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self.deliver: Deliver | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.id[:8]}>"

    async def start(self, deliver: Deliver) -> None:
        """Begin receiving: ``deliver`` is called on the server loop for each envelope from elsewhere.

        Control envelopes (`Envelope.control`) go to their `on_control` handler instead.
        """
        self.deliver = _routing_controls(deliver)

    def publish(self, envelope: Envelope) -> None:
        """Send an envelope, already delivered locally, to the other processes (on the loop)."""

    def publish_sync(self, envelope: Envelope) -> None:
        """Send an envelope from a process or thread without a server loop (a view, a worker)."""
        raise NotImplementedError("The in-process broker cannot reach other processes.")

    async def stop(self) -> None:
        """Stop receiving and release connections."""
        self.deliver = None

    @property
    def replay_ready(self) -> bool:
        """Whether frames can be numbered and read through the broker now (not while it is down)."""
        return False

    async def replay_since(self, path: str, stream: str, seen: int | None, seconds: float) -> SharedReplay:
        """The last number of ``stream`` and its frames after ``seen``, once every frame numbered
        before has reached this process; raises ``ConnectionError`` while the broker is down."""
        raise NotImplementedError("The in-process broker numbers frames in each WebSocket.")

    def call_when_replay_ready(self, socket: Any) -> bool:
        """Call ``socket.backplane_ready()`` (on the loop) once `replay_ready` turns True, so that
        a connection that joined while the broker connects gets its catch-up then. False when it
        will not be called: the broker is ready now, stopped, or too many connections wait."""
        return False

    async def snapshots(self) -> list[dict[str, Any]]:
        """The metrics snapshot of every server process the broker reaches; here, this one's."""
        from tornado_websockets import metrics

        return [metrics.snapshot()]

    def snapshots_sync(self) -> list[dict[str, Any]]:
        """The snapshots every server process last shared, from a process that runs no server."""
        raise NotImplementedError("The in-process broker cannot see other processes.")

    def presence_changed(self, socket: Any, room: str | None, present: bool) -> bool:
        """A connection opened (``room`` None) or joined ``room`` (``present`` True), or the reverse
        (on the loop). Brokers that share presence with other processes write the change; they
        return True when they decide ``joined`` / ``left`` across processes, so the connection
        must not announce them itself. Here: False."""
        return False

    async def presence(self, path: str, room: str | None, local: tuple[Member, ...]) -> tuple[Member, ...]:
        """The members of ``path`` (or of its ``room``) in every process; here, the local ones."""
        return local

    def presence_sync(self, path: str, room: str | None) -> tuple[Member, ...]:
        """`presence` for a process that runs no server (a view, a worker)."""
        raise NotImplementedError("The in-process broker cannot see other processes.")


def broker_from_url(url: str | None) -> Broker:
    """The broker for a URL: ``None`` or ``memory://`` for in-process, ``redis://...`` for Redis."""
    if url is None or url in {"", "memory://"}:
        return Broker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        try:
            from tornado_websockets.broker_redis import RedisBroker
            from tornado_websockets.broker_redis_cluster import RedisClusterBroker, is_cluster_url
        except ImportError as error:
            raise ImportError(
                "The Redis backplane needs the redis package: pip install 'django-tornado-websockets[redis]'"
            ) from error
        return RedisClusterBroker(url) if is_cluster_url(url) else RedisBroker(url)
    raise ValueError(f"Unknown backplane URL {url!r}: use memory:// or redis://host:port/db.")
