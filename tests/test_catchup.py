"""CatchUp alone, without a socket: what a returning client is written, and the frames held meanwhile.

The connection is a stand-in holding a real `WebSocket` (not served) and a real `Outbox` whose
writes are collected. The shared case uses a stand-in broker: the point is the catch-up's own
order of writes, which `tests/test_recovery_redis.py` checks end to end against a real Redis.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from tests.outboxes import recording_outbox
from tornado_websockets import protocol
from tornado_websockets.catchup import CatchUp
from tornado_websockets.recovery import BROADCAST_STREAM, position_token, with_sequence
from tornado_websockets.recovery_redis import SharedReplay
from tornado_websockets.websocket import WebSocket


def connection(websocket: WebSocket) -> tuple[Any, list[Any]]:
    """A connection stand-in: its outbox appends each frame written, decoded, to the list returned."""
    written: list[Any] = []
    outbox = recording_outbox(websocket.path, lambda frame: written.append(json.loads(frame)))
    return SimpleNamespace(websocket=websocket, outbox=outbox, is_closed=False), written


def events(written: list[Any]) -> list[tuple[str, Any]]:
    return [(frame["event"], frame["data"]) for frame in written]


async def test_a_new_client_is_told_its_position() -> None:
    ws = WebSocket("/c", add_to_handlers=False, recover=60)
    assert ws.replay is not None
    ws.replay.append(BROADCAST_STREAM, protocol.encode("news", {}))
    socket, written = connection(ws)
    CatchUp(socket).catch_up(BROADCAST_STREAM)
    [(event, data)] = events(written)
    assert event == protocol.STREAM_EVENT
    assert (data["stream"], data["seq"], data["epoch"]) == ("*", 1, ws.replay.epoch)


async def test_a_returning_client_gets_what_it_missed_then_its_position() -> None:
    ws = WebSocket("/c", add_to_handlers=False, recover=60)
    replay = ws.replay
    assert replay is not None
    for n in range(3):
        replay.append("lobby", protocol.encode("news", {"n": n}))
    token = position_token(replay.secret, ws.path, "lobby", replay.epoch, 1, grant="g")
    socket, written = connection(ws)
    catchup = CatchUp(socket)
    request = {"epoch": replay.epoch, "streams": {"lobby": 1}, "tokens": {"lobby": token}}
    assert catchup.read_request(json.dumps(request))
    catchup.catch_up("lobby")
    assert [(e, d.get("n", d.get("seq"))) for e, d in events(written)] == [
        ("news", 1),
        ("news", 2),
        (protocol.STREAM_EVENT, 3),
    ]
    written.clear()
    catchup.catch_up("lobby")  # a position serves once
    assert [e for e, _ in events(written)] == [protocol.STREAM_EVENT]


async def test_a_position_without_its_token_earns_a_resync() -> None:
    ws = WebSocket("/c", add_to_handlers=False, recover=60)
    assert ws.replay is not None
    socket, written = connection(ws)
    catchup = CatchUp(socket)
    assert catchup.read_request(json.dumps({"epoch": ws.replay.epoch, "streams": {"*": 0}}))
    catchup.catch_up(BROADCAST_STREAM)
    assert [e for e, _ in events(written)] == [protocol.RESYNC_EVENT, protocol.STREAM_EVENT]


async def test_an_unreadable_request_is_refused() -> None:
    ws = WebSocket("/c", add_to_handlers=False, recover=60)
    socket, _ = connection(ws)
    assert not CatchUp(socket).read_request("{not json")
    assert not CatchUp(socket).read_request(json.dumps({"streams": {}}))  # no epoch


class SharingBroker:
    """A stand-in for a backplane that numbers frames: it answers the catch-up's read when told."""

    shares_replay = True
    replay_ready = True

    def __init__(self) -> None:
        self.answer: asyncio.Future[SharedReplay] = asyncio.get_running_loop().create_future()

    async def replay_since(self, path: str, stream: str, seen: int | None, seconds: float) -> SharedReplay:
        return await self.answer

    def call_when_replay_ready(self, socket: Any) -> bool:
        return False


async def test_shared_frames_arriving_during_the_read_are_held_then_follow_the_position(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = WebSocket("/c", add_to_handlers=False, recover=60)
    broker = SharingBroker()
    monkeypatch.setattr(ws.server, "broker", broker)
    socket, written = connection(ws)
    catchup = CatchUp(socket)
    catchup.catch_up("lobby")
    await asyncio.sleep(0)
    catchup.write_numbered("lobby", 5, with_sequence(protocol.encode("news", {"n": 5}), "lobby", 5))
    catchup.write_position("lobby", 6)  # a frame it was left out of (skip)
    catchup.write_resync("lobby", 4, "e", b"s")  # its catch-up will say where it stands
    assert written == []
    broker.answer.set_result(SharedReplay("e", 4, [], b"s"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert [(e, d.get("n", d.get("seq"))) for e, d in events(written)] == [
        (protocol.STREAM_EVENT, 4),
        ("news", 5),
        (protocol.STREAM_EVENT, 6),
    ]
    written.clear()
    catchup.write_numbered("lobby", 7, protocol.encode("news", {"n": 7}))  # nothing held: at once
    assert events(written) == [("news", {"n": 7})]


async def test_the_catch_up_goes_ahead_of_a_frame_of_its_stream_being_numbered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 28 §1, alone: someone in this process sent a frame to the room as the client joined;
    the client's catch-up must not wait behind it in the connection's order."""
    ws = WebSocket("/c", add_to_handlers=False, recover=60)
    broker = SharingBroker()
    monkeypatch.setattr(ws.server, "broker", broker)
    socket, written = connection(ws)
    catchup = CatchUp(socket)
    catchup.catch_up("lobby")
    socket.outbox.expect_numbered("lobby")  # the frame sent to the room, on its way to Redis
    broker.answer.set_result(SharedReplay("e", 4, [], b"s"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert [(e, d.get("seq")) for e, d in events(written)] == [(protocol.STREAM_EVENT, 4)]
    frame = with_sequence(protocol.encode("news", {"n": 5}), "lobby", 5)
    assert socket.outbox.fill_numbered("lobby", lambda: catchup.write_numbered("lobby", 5, frame))
    assert [e for e, _ in events(written)] == [protocol.STREAM_EVENT, "news"]
