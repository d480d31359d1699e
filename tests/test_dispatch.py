"""Dispatcher alone, without a socket: which frames start which function, and what the client is sent.

The connection is a stand-in that collects the frames written to it; the path is a real, unserved
`WebSocket` with its real `Server` (for the worker pool and the in-flight count). End to end, the
same behaviour is checked with real clients in tests/test_websockethandler.py and test_event_tasks.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado_websockets import loops, protocol
from tornado_websockets.dispatch import Dispatcher
from tornado_websockets.exceptions import EventError
from tornado_websockets.limits import RATE_CLOSE_CODE, Limits
from tornado_websockets.websocket import WebSocket


class Connection:
    """A connection stand-in: frames written are decoded into ``written``; ``closed_with`` its close."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.runtime = websocket.server
        self.loop = asyncio.get_running_loop()
        self.written: list[dict[str, Any]] = []
        self.is_closed = False
        self.closed_with: tuple[int | None, str | None] | None = None

    def write_frame(self, frame: bytes) -> None:
        self.written.append(json.loads(frame))

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closed_with = (code, reason)
        self.is_closed = True


def dispatcher(ws: WebSocket, limits: Limits | None = None) -> tuple[Dispatcher, Connection]:
    connection = Connection(ws)
    loop = connection.loop
    return Dispatcher(connection, loops.inbox(loop), limits or Limits()), connection


def frame(event: str, data: Any = None, frame_id: int | None = None) -> str:
    payload: dict[str, Any] = {"event": event, "data": data or {}}
    if frame_id is not None:
        payload["id"] = frame_id
    return json.dumps(payload)


async def test_an_unbound_event_earns_a_warning_and_its_requests_an_error_reply() -> None:
    ws = WebSocket("/d", add_to_handlers=False)
    run, connection = dispatcher(ws)
    assert run.receive(frame("nope", frame_id=3)) is None
    warning, ack = connection.written
    assert warning["event"] == protocol.WARNING_EVENT
    assert (ack["event"], ack["id"]) == (protocol.ACK_EVENT, 3)
    assert "not bound" in ack["error"]["message"]


async def test_a_client_cannot_send_a_reserved_event() -> None:
    ws = WebSocket("/d", add_to_handlers=False)
    ws.on(lambda socket: None, name="open")
    run, connection = dispatcher(ws)
    run.receive(frame("open"))
    assert "reserved" in connection.written[0]["data"]["message"]


async def test_the_liveness_probe_is_answered_where_ping_is_not_bound() -> None:
    ws = WebSocket("/d", add_to_handlers=False)
    run, connection = dispatcher(ws)
    run.receive(frame(protocol.PING_EVENT))
    run.receive(frame(protocol.PING_EVENT, frame_id=1))
    assert [f["event"] for f in connection.written] == [protocol.PONG_EVENT, protocol.ACK_EVENT]


async def test_a_function_on_the_loop_replies_at_once() -> None:
    ws = WebSocket("/d", add_to_handlers=False)
    ws.on(lambda data: {"twice": data["n"] * 2}, name="double", blocking=False)
    run, connection = dispatcher(ws)
    assert run.receive(frame("double", {"n": 21}, frame_id=7)) is None
    assert connection.written == [{"event": protocol.ACK_EVENT, "id": 7, "data": {"twice": 42}}]
    assert ws.metrics.latency.count == 1


async def test_failures_are_told_to_the_client_not_raised() -> None:
    ws = WebSocket("/d", add_to_handlers=False)

    @ws.on
    async def refuse(data: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        raise EventError("not today")

    @ws.on
    async def crash(data: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    run, connection = dispatcher(ws)
    pending = run.receive(frame("refuse", frame_id=1))
    assert pending is not None
    await pending
    run.receive(frame("crash"))
    await asyncio.sleep(0)
    refused, crashed = connection.written
    assert (refused["event"], refused["error"]["message"]) == (protocol.ACK_EVENT, "not today")
    assert crashed["event"] == protocol.ERROR_EVENT
    assert ws.metrics.handler_errors == 1


async def test_a_plain_def_runs_in_a_worker_and_replies_on_the_loop() -> None:
    ws = WebSocket("/d", add_to_handlers=False)
    loop = asyncio.get_running_loop()
    ws.on(lambda: loops.running_loop() is loop, name="where")
    run, connection = dispatcher(ws)
    pending = run.receive(frame("where", frame_id=1))
    assert pending is not None
    await asyncio.wait_for(pending, 5)
    assert connection.written == [{"event": protocol.ACK_EVENT, "id": 1, "data": False}]


async def test_a_client_past_its_rate_is_warned_once_then_closed() -> None:
    ws = WebSocket("/d", add_to_handlers=False)
    ws.on(lambda: None, name="tick", blocking=False)
    run, connection = dispatcher(ws, Limits(max_rate=0.001, burst=2))
    for _ in range(2 + 1 + 2 + 1):
        run.receive(frame("tick"))
    warnings = [f for f in connection.written if f["event"] == protocol.WARNING_EVENT]
    assert len(warnings) == 1
    assert connection.closed_with == (RATE_CLOSE_CODE, "Rate limit exceeded")
