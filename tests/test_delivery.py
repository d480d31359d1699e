"""Drops counted by reason and path, and the WARNING line about them at most every LOG_INTERVAL."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from tornado_websockets import delivery
from tornado_websockets.exceptions import EventError
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(delivery, "time", SimpleNamespace(monotonic=clock))
    return clock


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == delivery.__name__ and r.levelno == logging.WARNING
    ]


def test_every_drop_is_counted_by_reason_and_path(clock: Clock) -> None:
    delivery.record_drop(delivery.CONNECTION_CLOSED, "/chat")
    delivery.record_drop(delivery.CONNECTION_CLOSED, "/chat", 2)
    delivery.record_drop(delivery.BACKPLANE_UNREACHABLE, "/news")
    assert delivery.dropped() == {
        (delivery.CONNECTION_CLOSED, "/chat"): 3,
        (delivery.BACKPLANE_UNREACHABLE, "/news"): 1,
    }
    delivery.reset_drops()
    assert delivery.dropped() == {}


def test_the_warning_says_what_and_why_at_a_bounded_rate(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=delivery.__name__)
    delivery.record_drop(delivery.CONNECTION_CLOSED, "/chat")
    assert warnings(caplog) == ["Frames not delivered: 1 on /chat (connection_closed)"]  # the first at once
    for _ in range(500):  # a burst: counted exactly, not logged line by line
        clock.now += 0.01
        delivery.record_drop(delivery.SLOW_CONSUMER, "/chat")
    assert len(warnings(caplog)) == 1
    clock.now += delivery.LOG_INTERVAL
    delivery.record_drop(delivery.UNKNOWN_PATH, "/gone")
    assert warnings(caplog)[1:] == [
        "Frames not delivered: 500 on /chat (slow_consumer), 1 on /gone (unknown_path)"  # what was held back
    ]
    assert delivery.dropped()[delivery.SLOW_CONSUMER, "/chat"] == 500


async def test_an_emit_to_an_empty_room_and_an_unencodable_reply_are_counted() -> None:
    ws = WebSocket("/counted")

    @ws.on
    async def answer() -> object:
        return object()  # no JSON for it

    async with serve() as server, server.connect("/counted") as client:
        ws.emit("news", {}, room="nobody-here")
        with pytest.raises(EventError):
            await client.request("answer")
    assert delivery.dropped()[(delivery.UNKNOWN_ROOM, "/counted")] == 1
    assert delivery.dropped()[(delivery.ENCODING_ERROR, "/counted")] == 1
