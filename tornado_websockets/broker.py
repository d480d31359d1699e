"""The backplane carrying emits between server processes: the `Broker` interface, in-process default.

Delivery is local first, then published: a process delivers an emit to its own clients, then hands
the `Envelope` to the broker, whose other processes deliver it to theirs. The frame inside is
encoded once, by the process that emitted it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from tornado_websockets import codec
from tornado_websockets.presence import Member
from tornado_websockets.recovery import BROADCAST_STREAM

if TYPE_CHECKING:
    from tornado_websockets.redis.replay import SharedReplay
    from tornado_websockets.types import BrokerHost
    from tornado_websockets.websocket import WebSocket

__all__ = [
    "CONTROL_HANDLERS",
    "Broker",
    "Envelope",
    "PresenceStore",
    "ReplayStore",
    "broker_from_url",
    "on_control",
]

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
    #: The number its stream's numbering started from, with ``seq`` (see
    #: `tornado_websockets.redis.replay`): numbers of different bases are not comparable.
    base: int | None = None
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
        if self.base is not None:
            fields["b"] = self.base
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
        control = fields.get("c")
        return cls(
            fields["p"],
            frame,
            fields.get("r"),
            fields.get("s"),
            fields.get("o") or "",
            _number(fields.get("q")),
            _number(fields.get("b")),
            control=control if isinstance(control, str) else None,
        )


def _number(value: object) -> int | None:
    """A number of a header, or None when it holds none."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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


class _CallbackHost:
    """The host of a broker started with a bare callable (the form before hosts): it serves no
    path and shares no metrics; the callable receives the envelopes."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver

    @property
    def websockets(self) -> Mapping[str, WebSocket]:
        return {}

    def websocket_for(self, path: str) -> WebSocket | None:
        return None

    def deliver_envelope(self, envelope: Envelope) -> None:
        self._deliver(envelope)

    def snapshot(self) -> dict[str, Any]:
        return {}


class ReplayStore(Protocol):
    """Shared recovery, a capability beside a broker's delivery (`Broker.replay`): frames numbered
    and kept for every process (see `tornado_websockets.redis.recovery`)."""

    @property
    def ready(self) -> bool:
        """Whether frames can be numbered and read now (not while the backplane is down)."""
        ...

    async def replay_since(self, path: str, stream: str, seen: int | None, seconds: float) -> SharedReplay:
        """The last number of ``stream`` and its frames after ``seen``, once every frame numbered
        before has reached this process; raises ``ConnectionError`` while the backplane is down."""
        ...

    def call_when_ready(self, socket: Any) -> bool:
        """Call ``socket.backplane_ready()`` once `ready` turns True; False when it will not."""
        ...

    async def spend(self, path: str, grant: str, seconds: float) -> bool:
        """Use a recovery grant, for every process: True the first time only (kept ``seconds``);
        raises ``ConnectionError`` while the backplane is down."""
        ...

    async def revoke(self, path: str, grant: str, seconds: float) -> None:
        """Revoke a recovery grant (its connection left the stream), for every process."""
        ...


class PresenceStore(Protocol):
    """Shared presence and metrics, a capability beside a broker's delivery
    (`Broker.presence_store`; see `tornado_websockets.redis.presence`)."""

    def changed(self, socket: Any, room: str | None, present: bool) -> bool:
        """Share a change; True when ``joined`` / ``left`` are decided across processes."""
        ...

    async def members(self, path: str, room: str | None) -> tuple[Member, ...] | None:
        """The members of the *other* live processes; None when they cannot be read."""
        ...

    def members_sync(self, path: str, room: str | None) -> tuple[Member, ...]:
        """The members of every live server process, from a process that runs no server."""
        ...

    async def snapshots(self) -> list[dict[str, Any]] | None:
        """The metrics snapshots of the *other* live processes; None when they cannot be read."""
        ...

    def snapshots_sync(self) -> list[dict[str, Any]]:
        """The snapshots of every live server process, from a process that runs no server."""
        ...


class Broker:
    """The default broker: one process, nothing to set up, nothing leaves the process.

    A broker delivers: `start`, `publish`, `publish_sync`, `stop`; subclasses that reach other
    processes set `cross_process` and implement those four. Shared recovery (`replay`) and shared
    presence (`presence_store`) are optional capabilities beside the delivery, None here; the
    methods after `stop` answer through them (for this process only without them).
    """

    #: True when emits reach the clients of other processes.
    cross_process: ClassVar[bool] = False

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        #: The server this broker serves, given by `start`.
        self.host: BrokerHost | None = None
        self.deliver: Deliver | None = None
        #: Shared recovery beside the delivery; None: each process numbers what it delivers.
        self.replay: ReplayStore | None = None
        #: Shared presence and metrics beside the delivery; None: this process's only.
        self.presence_store: PresenceStore | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.id[:8]}>"

    async def start(self, host: BrokerHost | Deliver) -> None:
        """Begin receiving for ``host``, the server: each envelope from elsewhere goes to its
        ``deliver_envelope``, on its loop; its paths and metrics are read through it.

        Control envelopes (`Envelope.control`) go to their `on_control` handler instead. A bare
        callable instead of a host is still accepted: it receives the envelopes, and the broker
        then sees no path of any server.
        """
        # A server is no callable; the form before hosts passed a function or a bound method.
        self.host = _CallbackHost(host) if callable(host) else host
        self.deliver = _routing_controls(self.host.deliver_envelope)

    def publish(self, envelope: Envelope) -> None:
        """Send an envelope, already delivered locally, to the other processes (on the loop)."""

    def publish_sync(self, envelope: Envelope) -> None:
        """Send an envelope from a process or thread without a server loop (a view, a worker)."""
        raise NotImplementedError("The in-process broker cannot reach other processes.")

    async def stop(self) -> None:
        """Stop receiving and release connections."""
        self.deliver = None

    def membership_changed(self, socket: Any, room: str | None, present: bool) -> None:
        """A connection opened (``room`` None) or joined ``room`` (``present``), or the reverse
        (on the loop): for a delivery that depends on where members are (sharded channels)."""

    # Through the capabilities (what connections and WebSockets call) ---------------------------

    @property
    def shares_replay(self) -> bool:
        """Whether the broker numbers and keeps the frames of recovering paths for every process
        (see `tornado_websockets.redis.replay`); else each process numbers what it delivers."""
        return self.replay is not None

    @property
    def replay_ready(self) -> bool:
        """Whether frames can be numbered and read through the broker now (not while it is down)."""
        return self.replay is not None and self.replay.ready

    async def replay_since(self, path: str, stream: str, seen: int | None, seconds: float) -> SharedReplay:
        """See `ReplayStore.replay_since`."""
        if self.replay is None:
            raise NotImplementedError("The in-process broker numbers frames in each WebSocket.")
        return await self.replay.replay_since(path, stream, seen, seconds)

    def call_when_replay_ready(self, socket: Any) -> bool:
        """Call ``socket.backplane_ready()`` (on the loop) once `replay_ready` turns True, so that
        a connection that joined while the broker connects gets its catch-up then. False when it
        will not be called: the broker is ready now, stopped, or too many connections wait."""
        return self.replay is not None and self.replay.call_when_ready(socket)

    def presence_changed(self, socket: Any, room: str | None, present: bool) -> bool:
        """A connection opened (``room`` None) or joined ``room`` (``present`` True), or the reverse
        (on the loop). With shared presence, the change is written; True when ``joined`` /
        ``left`` are decided across processes, so the connection must not announce them itself."""
        self.membership_changed(socket, room, present)
        store = self.presence_store
        return store is not None and store.changed(socket, room, present)

    async def presence(self, path: str, room: str | None, local: tuple[Member, ...]) -> tuple[Member, ...]:
        """The members of ``path`` (or of its ``room``) in every process: ``local`` (live), and
        the others' through shared presence."""
        shared = None if self.presence_store is None else await self.presence_store.members(path, room)
        return local if shared is None else local + shared

    def presence_sync(self, path: str, room: str | None) -> tuple[Member, ...]:
        """`presence` for a process that runs no server (a view, a worker)."""
        if self.presence_store is None:
            raise NotImplementedError("The in-process broker cannot see other processes.")
        return self.presence_store.members_sync(path, room)

    async def snapshots(self) -> list[dict[str, Any]]:
        """The metrics snapshot of every server process the broker reaches: this one's (live),
        and those the others last shared."""
        local = [] if self.host is None else [self.host.snapshot()]
        shared = None if self.presence_store is None else await self.presence_store.snapshots()
        return local if shared is None else [*local, *shared]

    def snapshots_sync(self) -> list[dict[str, Any]]:
        """The snapshots every server process last shared, from a process that runs no server."""
        if self.presence_store is None:
            raise NotImplementedError("The in-process broker cannot see other processes.")
        return self.presence_store.snapshots_sync()


def broker_from_url(url: str | None) -> Broker:
    """The broker for a URL: ``None`` or ``memory://`` for in-process, ``redis://...`` for Redis.

    Defined in `tornado_websockets.backplanes` (which imports the Redis brokers); kept here for
    the code that imports it from this module.
    """
    # Function-level on purpose: backplanes imports this module (and the Redis brokers, which
    # import it too), so a module-level import here would be a cycle.
    from tornado_websockets import backplanes

    return backplanes.broker_from_url(url)
