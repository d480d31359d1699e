"""Frames flowing through a backplane fault, and what a client must have seen after it (issue 28 §3, §4).

A talker on one server process says numbered things to the lobby of ``/news`` (recovering) while
a reader on another process listens; a fault strikes in the middle. Afterwards the reader must
have every frame, in order, or have been told (``resync``, or a jump in ``seq`` it can see).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from tests.test_recovery_redis import room_frames
from tornado_websockets.testing import WebSocketTestClient

__all__ = ["Seen", "flow_through", "seen"]


@dataclasses.dataclass
class Seen:
    """What one client received of the lobby."""

    said: list[int]  # the numbers said, in the order received
    resyncs: int
    gaps: int  # jumps in seq between two frames, with no resync between them
    missing: list[int]  # numbers sent and never received

    @property
    def in_order(self) -> bool:
        """Each frame once, in the order said."""
        return self.said == sorted(set(self.said))

    @property
    def disorder(self) -> list[tuple[int, int]]:
        """Each place where a number does not follow the one before it: (before, after)."""
        return [(a, b) for a, b in zip(self.said, self.said[1:], strict=False) if b <= a]


def seen(frames: list[Any], sent: list[int]) -> Seen:
    """Sort out the frames a client received of the lobby against the numbers ``sent``."""
    said: list[int] = []
    resyncs = gaps = 0
    last: int | None = None
    for frame in frames:
        if frame.event == "resync":
            resyncs += 1
            last = None
        elif frame.event == "stream" and isinstance(frame.data.get("seq"), int):
            last = frame.data["seq"]
        elif frame.event == "said":
            if isinstance(frame.data["n"], int):
                said.append(frame.data["n"])
            if frame.seq is not None:
                if last is not None and frame.seq > last + 1:
                    gaps += 1
                last = frame.seq
    return Seen(said, resyncs, gaps, sorted(set(sent) - set(said)))


async def flow_through(
    talker: WebSocketTestClient,
    reader: WebSocketTestClient,
    fault: Callable[[], None],
    back: Callable[[], Awaitable[bool]],
    pause: float = 0.005,
) -> tuple[Seen, Seen]:
    """Say 100 things, cause ``fault`` (in a thread) while saying more, go on until ``back()`` (20 s
    at most) and 100 things more; then say ``"end"`` until the reader hears it. (reader's, talker's)."""
    sent: list[int] = []

    async def say(count: int) -> None:
        for _ in range(count):
            sent.append(len(sent))
            await talker.emit("say", {"room": "lobby", "n": sent[-1]})
            await asyncio.sleep(pause)

    await say(100)
    faulty = asyncio.ensure_future(asyncio.to_thread(fault))
    while not faulty.done():
        await say(1)
    await faulty
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    # Not an assertion: what a client receives is, below (a process that never came back fails there).
    while not await back() and loop.time() < deadline:
        await say(5)
    await say(100)
    reader_frames = await _until_end(talker, reader)
    talker_frames = await _until_end(None, talker)
    return seen(reader_frames, sent), seen(talker_frames, sent)


async def _until_end(talker: WebSocketTestClient | None, client: WebSocketTestClient) -> list[Any]:
    """The client's lobby frames up to an ``"end"``, said by ``talker`` again each second until
    it comes (frames said while a process was reconnecting may not)."""
    frames: list[Any] = []
    for attempt in range(12):
        if talker is not None:
            await talker.emit("say", {"room": "lobby", "n": f"end {attempt}"})
        try:
            while True:
                frames += await room_frames(client, 1)
                if frames[-1].event == "said" and str(frames[-1].data["n"]).startswith("end"):
                    return frames
        except TimeoutError:
            continue
    raise AssertionError("the end never came")
