"""`Client`: one connection to a path of a django-tornado-websockets server, kept alive; asyncio.

The same protocol and behaviour as the JavaScript client (static/tornado_websockets/client.mjs): JSON
frames ``{"event", "data"}``, requests answered by ``ack``, reconnection with backoff and jitter, a bounded
outbox while disconnected, final close codes, ``unreachable`` after attempts that never open, recovery of
missed frames (positions, tokens, gaps, a bounded ``?recover=``) and the liveness probe. The WebSocket
itself is the ``websockets`` package's (the ``client`` extra).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal

from tornado_websockets.client.errors import (
    ClientUsageError,
    ConnectionEnded,
    ConnectionLost,
    ConnectionUnreachable,
    RequestDropped,
    RequestTimeout,
)
from tornado_websockets.client.listeners import Listeners
from tornado_websockets.client.liveness import Probe
from tornado_websockets.client.options import (
    Liveness,
    Reconnect,
    is_final_close,
    is_reconnect_now,
    liveness_option,
    reconnect_option,
    whole_number,
)
from tornado_websockets.client.pending import Outbox, Queued, Requests
from tornado_websockets.client.positions import Positions
from tornado_websockets.client.wire import (
    MSGPACK_AVAILABLE,
    SUBPROTOCOL,
    decode_frame,
    encode_frame,
    has_bytes,
)
from tornado_websockets.protocol import (
    ACK_EVENT,
    ERROR_EVENT,
    RESYNC_EVENT,
    WARNING_EVENT,
    ServerFrame,
)

try:
    from websockets.asyncio.client import ClientConnection
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
    from websockets.typing import Origin, Subprotocol
except ImportError as error:  # pragma: no cover - the extra is installed wherever the client is used
    raise ImportError(
        "tornado_websockets.client needs the websockets package: "
        "pip install 'django-tornado-websockets[client]'"
    ) from error

__all__ = ["RESERVED_EVENTS", "SERVER_ERROR_EVENT", "Client", "connect"]

logger = logging.getLogger(__name__)

#: Events raised by the connection itself rather than by the server; a server frame so named is ignored.
RESERVED_EVENTS = frozenset(["open", "close", "error", "reconnecting", "ended", "unreachable", "gap"])
#: The local name of the server's "error" frame (an event function failed); "error" is the socket's own.
SERVER_ERROR_EVENT = "server_error"

State = Literal["connecting", "open", "waiting", "closed"]
Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def normalize_data(data: Any) -> Any:
    """The emit rule shared with the server and the JavaScript client: None is {}, a non-object {message}."""
    if data is None:
        return {}
    if isinstance(data, (str, int, float, list, tuple, bytes)):
        return {"message": data}
    return data  # a dict, or a dataclass / Struct / model that the codec turns into an object


def _headers(headers: Headers | None, cookies: Mapping[str, str] | None) -> list[tuple[str, str]]:
    items = list(headers.items() if isinstance(headers, Mapping) else headers or [])
    if cookies:
        items.append(("Cookie", "; ".join(f"{name}={value}" for name, value in cookies.items())))
    return items


class Client:
    """A connection to ``url`` (``ws://host:port/ws/path``) that reconnects, recovers and checks liveness.

    Use ``async with connect(url) as client:`` (waits for the first open), or ``client = Client(url)``,
    ``client.connect()`` and the events, as the JavaScript client does.

    Its own events, besides the server's: ``open``, ``close`` (``{code, reason}``), ``error`` (the
    exception of an attempt that failed), ``reconnecting`` (``{attempt, delay}``), ``ended`` (``{code,
    reason, final}``), ``unreachable`` (``{attempts, status}``), ``gap`` (``{stream, expected, received,
    recovering}``). The server's ``error`` frame reaches ``server_error``; ``resync`` is ``{stream}``.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Headers | None = None,
        cookies: Mapping[str, str] | None = None,
        origin: str | None = None,
        reconnect: Reconnect | bool = True,
        liveness: Liveness | bool = True,
        outbox: int = 100,
        refused_after: int = 3,
        request_timeout: float = 10.0,
        open_timeout: float = 10.0,
        max_size: int | None = 2**20,
        binary: bool = False,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ClientUsageError(
                f"url should be a ws:// or wss:// URL such as ws://localhost:8000/ws/chat, not {url!r}."
            )
        self.url = url
        self.headers = _headers(headers, cookies)
        self.origin = origin
        self.reconnect = reconnect_option(reconnect)
        self.liveness = liveness_option(liveness)
        self.outbox_size = whole_number("outbox", outbox, 0)
        self.refused_after = whole_number("refused_after", refused_after, 1)
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.max_size = max_size
        #: Offer MessagePack frames for bytes (needs msgspec). Off by default, as in the JavaScript client:
        #: a server without the ``binary`` extra warns about the offer. Without them, bytes go as base64.
        self.binary = binary and MSGPACK_AVAILABLE
        self._msgpack = False  # negotiated on the current connection
        #: Frames not delivered, by reason: outbox_full, invalid_frame, reserved_name, payload_error.
        self.dropped: collections.Counter[str] = collections.Counter()
        #: Why the server ended the connection for good, once it did.
        self.ended: ConnectionEnded | None = None
        #: The current streak of attempts that never opened, once it reached ``refused_after``.
        self.unreachable: ConnectionUnreachable | None = None
        self.positions = Positions()
        #: The URL of the latest attempt, ``?recover=`` included.
        self.last_url: str | None = None
        self._probe = Probe()
        self._listeners = Listeners(self.dropped)
        self._outbox = Outbox(self.outbox_size)
        self._requests = Requests()
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._phase: State = "closed"
        self._stopped = False
        self._attempts = 0
        self._failures = 0
        self._streaks = 0  # how many times "unreachable" was told
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._queue: asyncio.Queue[tuple[str, Any] | None] | None = None

    def __repr__(self) -> str:
        return f"<Client {self.url} {self.state}>"

    # The connection's life --------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """ "connecting", "open", "waiting" (to reconnect) or "closed" (for good, or never opened)."""
        return self._phase

    @property
    def probes(self) -> int:
        """How many liveness probes (``ping`` frames) were sent, over every connection."""
        return self._probe.sent

    @property
    def connected(self) -> bool:
        """True while the socket is open."""
        return self._ws is not None

    @property
    def queued(self) -> int:
        """How many frames wait in the outbox for the socket to open."""
        return len(self._outbox)

    def connect(self) -> Client:
        """Open the connection (again), in the background. Does nothing while it is opening or open."""
        self._stopped = False
        if self._task is None or self._task.done():
            self.ended = None
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"client {self.url}")
        return self

    async def wait_open(self) -> None:
        """Wait until the socket is open.

        :raise ConnectionEnded: the server closed it for good first.
        :raise ConnectionUnreachable: meanwhile, ``refused_after`` attempts in a row never opened (the
            client goes on trying).
        :raise ConnectionLost: the client was closed, or gave up (``reconnect=False``).
        """
        streaks = self._streaks
        while self._ws is None:
            if self.ended is not None:
                raise self.ended
            if self._streaks != streaks and self.unreachable is not None:
                raise self.unreachable
            if self._task is None or self._task.done():
                raise ConnectionLost("")
            await self._changed.wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and stop reconnecting (until `connect`); fail the requests still waiting."""
        self._stopped = True
        task = self._task
        if self._ws is not None:
            await self._ws.close(code, reason)
        elif task is not None and self._phase == "connecting":
            task.cancel()
        self._wake.set()
        if task is not None and task is not asyncio.current_task():
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
        self._finish()

    async def __aenter__(self) -> Client:
        self.connect()
        try:
            await self.wait_open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    def __await__(self) -> Generator[Any, None, Client]:
        return self.__aenter__().__await__()

    # Listeners and iteration ------------------------------------------------------------------------

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Call ``callback(data)`` or ``callback(data, frame)`` on every ``event``; a decorator without it."""
        if callback is None:
            return lambda function: self.on(event, function) and function
        self._listeners.add(event, callback, once=False)
        return self

    def once(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Like `on`, for the next ``event`` only."""
        if callback is None:
            return lambda function: self.once(event, function) and function
        self._listeners.add(event, callback, once=True)
        return self

    def off(self, event: str | None = None, callback: Callable[..., Any] | None = None) -> Client:
        """Remove ``callback`` from ``event``; without callback, every listener of it; without both, all."""
        self._listeners.remove(event, callback)
        return self

    def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        """``async for event, data in client``: the server's events from now on, until the client closes."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            if self._task is None or self._task.done():
                self._queue.put_nowait(None)  # closed: nothing more will come
        return self._iterate(self._queue)

    async def _iterate(self, queue: asyncio.Queue[tuple[str, Any] | None]) -> AsyncIterator[tuple[str, Any]]:
        while (item := await queue.get()) is not None:
            yield item
        queue.put_nowait(None)  # for any other iterator

    # Sending ----------------------------------------------------------------------------------------

    async def emit(self, event: str, data: Any = None) -> None:
        """Send an event, now if the socket is open, else once it opens (in order)."""
        await self._send(self._queued(event, data, None))

    async def request(self, event: str, data: Any = None, timeout: float | None = None) -> Any:
        """Send an event and return its event function's return value (the server's ``ack``).

        :raise RequestFailed: the function failed (its message). :raise RequestTimeout: no reply in time.
        """
        frame_id = next(self._ids)
        queued = self._queued(event, data, frame_id)
        wait = self.request_timeout if timeout is None else timeout
        request = self._requests.open(frame_id, event)
        try:
            await self._send(queued)
            return await asyncio.wait_for(request.future, wait)
        except TimeoutError:
            raise RequestTimeout(event, wait) from None
        finally:
            self._requests.forget(frame_id)
            if not request.sent:
                self._outbox.discard(frame_id)

    def _queued(self, event: str, data: Any, frame_id: int | None) -> Queued:
        """The frame, encoded for the current connection (or, while closed, for the one expected)."""
        if not isinstance(event, str) or not event:
            raise ClientUsageError(f"An event name should be a non-empty str, not {event!r}.")
        payload: dict[str, Any] = {"event": event}
        if frame_id is not None:
            payload["id"] = frame_id
        payload["data"] = normalize_data(data)
        msgpack = self._msgpack if self._ws is not None else self.binary
        try:
            return Queued(encode_frame(payload, msgpack), payload, frame_id)
        except TypeError as error:
            raise ClientUsageError(f'Cannot encode the data of "{event}": {error}.') from None

    def _message(self, queued: Queued) -> str | bytes:
        """The message to write on the current connection: a frame with bytes follows its negotiation."""
        if has_bytes(queued.payload):
            return encode_frame(queued.payload, self._msgpack)
        return queued.message

    async def _send(self, queued: Queued) -> None:
        if self._ws is not None:
            try:
                await self._ws.send(self._message(queued))
            except ConnectionClosed:
                pass  # not written: it waits for the next connection
            else:
                self._requests.mark_sent(queued.id)
                return
        dropped = self._outbox.push(queued)
        if dropped is not None:
            self.dropped["outbox_full"] += 1
            logger.warning("Outbox full (%d frames), dropped: %r", self.outbox_size, dropped.message[:200])
            self._requests.fail(dropped.id, lambda request: RequestDropped(request.event, self.outbox_size))

    # The connection loop ----------------------------------------------------------------------------

    def _set_phase(self, phase: State) -> None:
        self._phase = phase
        self._changed.set()
        self._changed = asyncio.Event()

    def _emit_local(self, event: str, data: Any) -> None:
        self._listeners.dispatch(event, data)

    def _connect_url(self) -> str:
        recover = self.positions.recover_parameter()
        if recover is None:
            return self.url
        return f"{self.url}{'&' if '?' in self.url else '?'}recover={recover}"

    async def _open(self) -> ClientConnection:
        self.last_url = self._connect_url()
        return await ws_connect(
            self.last_url,
            additional_headers=self.headers,
            origin=None if self.origin is None else Origin(self.origin),
            subprotocols=[Subprotocol(SUBPROTOCOL)] if self.binary else None,
            ping_interval=None,  # the liveness probe is the client's own, as in the browser
            open_timeout=self.open_timeout,
            max_size=self.max_size,
        )

    async def _run(self) -> None:
        try:
            while not self._stopped:
                self._set_phase("connecting")
                try:
                    ws = await self._open()
                except (OSError, TimeoutError, InvalidHandshake) as error:
                    self._refused(error)
                    code, opened = 1006, False
                else:
                    code, reason = await self._serve(ws)
                    opened = True
                    self._closed(code, reason)
                if self.ended is not None or self._stopped or self.reconnect is None:
                    break
                await self._wait_before_retry(opened and is_reconnect_now(code))
        finally:
            self._ws = None
            self._set_phase("closed")
            if self._stopped or self.ended is not None or self.reconnect is None:
                self._finish()

    def _refused(self, error: Exception) -> None:
        """An attempt that never opened: a 403 of a guard, a server down, a timeout."""
        self._failures += 1
        status = error.response.status_code if isinstance(error, InvalidStatus) else None
        self._emit_local("error", error)
        self._emit_local("close", {"code": 1006, "reason": str(error)})
        if self._failures == self.refused_after:
            self.unreachable = ConnectionUnreachable(self._failures, status, str(error))
            self._streaks += 1
            logger.warning("%s: %s", self.url, self.unreachable)
            self._emit_local("unreachable", {"attempts": self._failures, "status": status})
            self._set_phase(self._phase)  # wake wait_open()

    def _closed(self, code: int, reason: str) -> None:
        """The socket closed (or was abandoned): tell, then end for good or let the loop retry."""
        final = not self._stopped and is_final_close(code)
        if final:
            self.ended = ConnectionEnded(code, reason)
            logger.warning("%s: %s", self.url, self.ended)
        self._emit_local("close", {"code": code, "reason": reason})
        if final:
            self._emit_local("ended", {"code": code, "reason": reason, "final": True})

    async def _wait_before_retry(self, now: bool) -> None:
        assert self.reconnect is not None
        delay = 0.0 if now else self.reconnect.delay(self._attempts)
        self._attempts += 1
        self._set_phase("waiting")
        self._emit_local("reconnecting", {"attempt": self._attempts, "delay": delay})
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _serve(self, ws: ClientConnection) -> tuple[int, str]:
        """Run one open connection until it closes or is given up; its close code and reason."""
        loop = asyncio.get_running_loop()
        opened_at = loop.time()
        self._failures = 0
        self.unreachable = None
        self._probe.restart()
        self._msgpack = ws.subprotocol == SUBPROTOCOL
        # Frames emitted while closed go first, so they keep their order with what open listeners send.
        try:
            while (queued := self._outbox.first()) is not None:
                await ws.send(self._message(queued))
                self._outbox.pop()
                self._requests.mark_sent(queued.id)
        except ConnectionClosed:
            pass  # the reader below sees the close
        except BaseException:
            ws.transport.abort()  # closed by the application while flushing: no socket left behind
            raise
        self._ws = ws
        self._set_phase("open")
        self._emit_local("open", {})
        parts = [loop.create_task(self._read(ws))]
        if self.liveness is not None:
            parts.append(loop.create_task(self._probe.watch(self.liveness, ws.send)))
        try:
            done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for part in parts:
                part.cancel()
        self._ws = None
        outcome = next(iter(done)).result()
        if isinstance(outcome, str):
            # Given up (a silent server, a gap): its closing handshake could take minutes: not awaited.
            ws.transport.abort()
            code, reason = 1006, outcome
        else:
            code, reason = outcome
        if self.reconnect is not None and loop.time() - opened_at >= self.reconnect.stable:
            self._attempts = 0  # stayed open long enough: the backoff starts over
        self._requests.fail_sent()  # their replies cannot come any more; queued ones wait for the next
        return code, reason

    async def _read(self, ws: ClientConnection) -> tuple[int, str] | str:
        while True:
            try:
                message = await ws.recv()
            except ConnectionClosed:
                return (ws.close_code or 1006, ws.close_reason or "")
            given_up = self._received(message)
            if given_up is not None:
                return given_up

    # Receiving --------------------------------------------------------------------------------------

    def _received(self, message: str | bytes) -> str | None:
        """Handle one message; a reason when the connection is to be given up (a gap to recover)."""
        self._probe.heard()
        try:
            frame = decode_frame(message, self._msgpack)
        except (ValueError, TypeError, RecursionError):
            self.dropped["invalid_frame"] += 1
            logger.warning("Ignored a frame that is not {event, data}: %r", message[:200])
            return None
        if self._probe.answers(frame):
            return None
        gap = self.positions.track(frame)
        if gap is not None:
            recovering = self.reconnect is not None
            self._emit_local(
                "gap",
                {
                    "stream": gap.stream,
                    "expected": gap.expected,
                    "received": gap.received,
                    "recovering": recovering,
                },
            )
            if recovering:  # the frames from the gap on come again on the next connection
                return f"Frames {gap.expected} to {gap.received - 1} of {gap.stream!r} are missing."
            self.positions.accept(gap)
        if frame.event == ACK_EVENT and frame.id in self._requests:
            self._requests.settle(frame)
            return None
        if frame.event != ERROR_EVENT and frame.event in RESERVED_EVENTS:
            # Only the client raises these: a server frame named so would fake a close, an end, a gap...
            self.dropped["reserved_name"] += 1
            logger.warning('Ignored a frame named after the client\'s own "%s" event.', frame.event)
            return None
        event = SERVER_ERROR_EVENT if frame.event == ERROR_EVENT else frame.event
        self._deliver(event, {} if frame.data is None else frame.data, frame)
        stream = self.positions.resyncs(frame)
        if stream is not None:
            # Left out of ?recover=, so what it missed was not replayed: reload, as on "resync".
            self._deliver(RESYNC_EVENT, {"stream": stream}, None)
        return None

    def _deliver(self, event: str, data: Any, frame: ServerFrame | None) -> None:
        unheard = self._queue is None and not self._listeners.has(event)
        if unheard and event in (WARNING_EVENT, SERVER_ERROR_EVENT):
            logger.warning('The server sent "%s" on %s: %r', event, self.url, data)
        self._listeners.dispatch(event, data, frame)
        if self._queue is not None:
            self._queue.put_nowait((event, data))

    def _finish(self) -> None:
        """Closed for good: fail what waits for a reply, end the iterations."""
        self._requests.fail_all()
        if self._queue is not None:
            self._queue.put_nowait(None)
            self._queue = None


def connect(url: str, **options: Any) -> Client:
    """A `Client` for ``url``: ``async with connect(url) as client:`` or ``client = await connect(url)``.

    Options: headers, cookies, origin, reconnect, liveness, outbox, refused_after, request_timeout,
    open_timeout, max_size (see `Client`).
    """
    return Client(url, **options)
