"""Recovery shared through Redis: a client that drops from one process and comes back to another."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.servers import backplane, backplane_script, connect_when_up, free_port, running
from tornado_websockets.broker_redis import DEFAULT_CHANNEL
from tornado_websockets.recovery_redis import ReplayKeys, SharedReplay, missed
from tornado_websockets.testing import WebSocketTestClient

SIZE = 12  # frames each stream keeps: ten missed ones fit, thirteen do not


# Pure parts ---------------------------------------------------------------------------------------


def test_the_read_reply_is_parsed_into_numbers_and_frames() -> None:
    replay = SharedReplay.parse(
        [b"ep0ch", b"1700000000000005", b"0-1700000000000004", b"f4", b"0-1700000000000005", b"f5"]
    )
    assert replay == SharedReplay(
        "ep0ch", 1_700_000_000_000_005, [(1_700_000_000_000_004, b"f4"), (1_700_000_000_000_005, b"f5")]
    )
    assert SharedReplay.parse([b"e", b"7"]) == SharedReplay("e", 7, [])


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        (5, []),  # up to date
        (4, [b"f5"]),
        (3, [b"f4", b"f5"]),
        (2, None),  # frame 3 is no longer kept: resync
        (6, None),  # a position never given out (Redis lost its data): resync
    ],
)
def test_missed_frames_or_a_resync(seen: int, expected: list[bytes] | None) -> None:
    assert missed(SharedReplay("e", 5, [(4, b"f4"), (5, b"f5")]), seen) == expected


def test_keys_name_the_channel_path_and_stream() -> None:
    keys = ReplayKeys("app", "/news")
    assert (keys.conf, keys.epoch) == ("app:recover", "app:replay:/news:epoch")
    assert keys.seq("lobby") == "app:replay:/news:lobby:seq"
    assert keys.frames("*") == "app:replay:/news:*:frames"


# Two server processes -----------------------------------------------------------------------------


def recover_query(epoch: str, streams: dict[str, int]) -> str:
    return "?recover=" + urllib.parse.quote(json.dumps({"epoch": epoch, "streams": streams}))


async def room_frames(client: WebSocketTestClient, count: int) -> list[Any]:
    """The next ``count`` frames, leaving out the position of the path's own stream ``"*"``."""
    frames: list[Any] = []
    while len(frames) < count:
        frame = await client.receive()
        if not (frame.event == "stream" and frame.data["stream"] == "*"):
            frames.append(frame)
    return frames


async def said(client: WebSocketTestClient, count: int) -> list[tuple[Any, int | None]]:
    """The next ``count`` frames of the room: (n, seq); any other frame in between fails the test."""
    frames = await room_frames(client, count)
    assert [frame.event for frame in frames] == ["said"] * count, frames
    return [(frame.data["n"], frame.seq) for frame in frames]


async def joined(client: WebSocketTestClient) -> list[Any]:
    """Join the lobby; the frames that follow until the lobby's position, that included."""
    assert await client.request("join", {"room": "lobby"}) == ["lobby"]
    frames = []
    while not frames or frames[-1].event != "stream":
        frames += await room_frames(client, 1)
    return frames


async def test_a_client_that_drops_recovers_what_it_missed_from_another_process(
    redis_server: RedisServer,
) -> None:
    ports = free_port(), free_port()
    url = "ws://127.0.0.1:{}/ws/news".format
    env = {"TWS_RECOVER_SIZE": str(SIZE)}
    async with (
        running(backplane(ports[0], redis_server.url), env=env),
        running(backplane(ports[1], redis_server.url), env=env),
    ):
        talker = await connect_when_up(url(ports[1]))
        reader = await connect_when_up(url(ports[0]))
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        [position] = [frame.data for frame in await joined(reader)]
        assert position["stream"] == "lobby"
        await joined(talker)

        # One live frame, numbered by Redis: both processes deliver it with the same number.
        await talker.emit("say", {"room": "lobby", "n": "live"})
        [(n, first)] = await said(reader, 1)
        assert (n, first) == ("live", position["seq"] + 1)
        assert await said(talker, 1) == [("live", first)]

        reader.close()
        for n in range(10):
            await talker.emit("say", {"room": "lobby", "n": n})
        assert [n for n, _ in await said(talker, 10)] == list(range(10))

        # Back on the *other* process: exactly the ten missed frames, in order, then the live stream.
        back = await connect_when_up(url(ports[1]) + recover_query(position["epoch"], {"lobby": first}))
        frames = await joined(back)
        assert [(f.data["n"], f.seq) for f in frames[:-1]] == [(n, first + 1 + n) for n in range(10)]
        assert frames[-1].data == {"stream": "lobby", "seq": first + 10, "epoch": position["epoch"]}
        await talker.emit("say", {"room": "lobby", "n": "after"})
        assert await said(back, 1) == [("after", first + 11)]
        await said(talker, 1)

        # An Emitter in a third process knows nothing of recovery: Redis numbers its frame too.
        assert (
            await backplane_script("emitter", redis_server.url, "lobby", "from-cron", "/news")
        ).strip() == "2"
        assert await said(back, 1) == [("from-cron", first + 12)]
        await said(talker, 1)

        # A gap larger than the buffer keeps: a resync, not a partial replay.
        back.close()
        for n in range(SIZE + 1):
            await talker.emit("say", {"room": "lobby", "n": n})
        await said(talker, SIZE + 1)
        again = await connect_when_up(url(ports[0]) + recover_query(position["epoch"], {"lobby": first + 12}))
        frames = await joined(again)
        assert [f.event for f in frames] == ["resync", "stream"]
        assert frames[0].data == {"stream": "lobby"}
        assert frames[1].data["seq"] == first + 12 + SIZE + 1

        # A client that comes with another epoch (Redis lost its data, say) resyncs as well.
        stale = await connect_when_up(url(ports[0]) + recover_query("another", {"lobby": 1}))
        assert [f.event for f in await joined(stale)] == ["resync", "stream"]
        for client in (talker, again, stale):
            client.close()
