"""Outbox alone, without a socket: what it writes, in which order, what it counts and when it closes."""

from __future__ import annotations

import asyncio

import pytest
import tornado.websocket

from tornado_websockets import delivery, outbox
from tornado_websockets.limits import BACKLOG_CLOSE_CODE
from tornado_websockets.outbox import Outbox
from tornado_websockets.pathmetrics import PathMetrics


class Wire:
    """What the outbox writes to: frames sent, the backlog it reports, whether it is closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sent: list[bytes] = []
        self.pending = 0
        self.is_closed = False
        self.closed_with: tuple[int, str] | None = None
        self.fail_next: BaseException | None = None

    def send(self, frame: bytes) -> asyncio.Future[None]:
        if self.is_closed:
            raise tornado.websocket.WebSocketClosedError()
        self.sent.append(frame)
        future = self.loop.create_future()
        if self.fail_next is not None:
            future.set_exception(self.fail_next)
        else:
            future.set_result(None)
        return future

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)
        self.is_closed = True

    def outbox(self, max_backlog: int = 1000) -> Outbox:
        return Outbox(
            owner="test connection",
            loop=self.loop,
            path="/p",
            metrics=PathMetrics(),
            max_backlog=max_backlog,
            send=self.send,
            backlog=lambda: self.pending,
            is_closed=lambda: self.is_closed,
            close=self.close,
        )


@pytest.fixture
async def wire() -> Wire:
    return Wire(asyncio.get_running_loop())


async def test_frames_are_written_and_counted(wire: Wire) -> None:
    box = wire.outbox()
    box.write(b"one")
    box.write(b"two!")
    assert wire.sent == [b"one", b"two!"]
    assert (box.metrics.frames_out, box.metrics.bytes_out) == (2, 7)
    assert delivery.dropped() == {}


async def test_a_write_to_a_closed_connection_is_a_counted_drop(wire: Wire) -> None:
    box = wire.outbox()
    wire.is_closed = True
    box.write(b"late")
    assert wire.sent == []
    assert delivery.dropped() == {(delivery.CONNECTION_CLOSED, "/p"): 1}


async def test_a_client_past_its_backlog_bound_is_closed_and_the_frame_counted(wire: Wire) -> None:
    box = wire.outbox(max_backlog=10)
    wire.pending = 0
    box.write(b"x" * 50)  # an empty backlog always takes one frame, whatever its size
    wire.pending = 8
    box.write(b"abc")
    assert wire.sent == [b"x" * 50]
    assert wire.closed_with == (BACKLOG_CLOSE_CODE, "Client too slow")
    assert delivery.dropped() == {(delivery.BACKLOG_BOUND, "/p"): 1}


async def test_a_failed_write_is_counted_as_slow_once_closed_for_its_backlog(wire: Wire) -> None:
    box = wire.outbox(max_backlog=10)
    wire.fail_next = OSError("reset")
    box.write(b"a")
    assert delivery.dropped() == {(delivery.WRITE_FAILED, "/p"): 1}
    wire.pending = 9
    box.write(b"too much")  # closed: what its backlog still holds fails as slow_consumer
    wire.is_closed = False
    wire.pending = 0
    box.write(b"b")
    assert delivery.dropped()[(delivery.SLOW_CONSUMER, "/p")] == 1


async def test_writes_wait_behind_a_frame_being_numbered_then_follow_it(wire: Wire) -> None:
    box = wire.outbox()
    box.expect_numbered("lobby")
    box.write(b"socket.emit")
    box.write(b"reply")
    assert wire.sent == []
    assert box.awaits_numbered("lobby")
    assert not box.awaits_numbered("other")
    assert not box.fill_numbered("other", lambda: box.write(b"never"))
    assert box.fill_numbered("lobby", lambda: box.write(b"ws.emit"))
    assert wire.sent == [b"ws.emit", b"socket.emit", b"reply"]
    assert not box.awaits_numbered("lobby")
    box.write(b"after")  # nothing awaited any more: at once
    assert wire.sent[-1] == b"after"


async def test_writes_ahead_of_order_go_out_at_once(wire: Wire) -> None:
    box = wire.outbox()
    box.expect_numbered("*")
    box.write(b"held")
    with box.ahead_of_order():
        box.write(b"resync")
    assert wire.sent == [b"resync"]
    box.fill_numbered("*", lambda: box.write(b"numbered"))
    assert wire.sent == [b"resync", b"numbered", b"held"]


async def test_a_frame_that_never_comes_back_numbered_releases_what_waited(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "ORDER_TIMEOUT", 0.01)
    box = wire.outbox()
    box.expect_numbered("lobby")
    box.write(b"held")
    await asyncio.sleep(0.1)
    assert wire.sent == [b"held"]
    assert not box.awaits_numbered("lobby")
