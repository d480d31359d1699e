"""Redis lost its data mid-stream (``FLUSHALL``): it numbers the stream anew, from a base of its
own. A process counts what its members actually missed of the new numbering, and delivers its
frames whether their numbers come out higher or lower than the old position.

A lower numbering is made deterministic by writing the stream's counter (``C:replay:P:S:seq``)
to 1,000 after the flush, before anything is numbered again: the numbering goes on from it, and
takes it for the new base (as it does a counter found without its base).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.servers import backplane, connect_when_up, free_port, running
from tests.test_recovery_redis import SIZE, contiguous, joined, read_lobby, said, status
from tornado_websockets.broker_redis import DEFAULT_CHANNEL
from tornado_websockets.emitter import Emitter
from tornado_websockets.recovery_redis import ReplayKeys, conf_value
from tornado_websockets.testing import WebSocketTestClient

KEYS = ReplayKeys(DEFAULT_CHANNEL, "/news")
#: What the stream's counter is set to after the flush, for a numbering below the old one; None:
#: Redis numbers from its time, as it does, above the old numbers (a millisecond later at least).
LOWER = 1000
NUMBERINGS = [pytest.param(None, id="higher"), pytest.param(LOWER, id="lower")]


def flush(redis_server: RedisServer, counter: int | None) -> None:
    """Redis loses every key; with ``counter``, the lobby's numbering starts again from it."""
    with redis_server.client() as admin:
        admin.flushall()
        if counter is not None:
            admin.set(KEYS.seq("lobby"), counter)


def after_the_resync(everything: list[Any]) -> tuple[dict[str, Any], list[Any]]:
    """The one ``resync``'s new position, and the frames that came after it (failing if there is
    no resync, or more than one)."""
    events = [frame.event for frame in everything]
    assert events.count("resync") == 1, events
    at = events.index("resync")
    position = everything[at + 1]
    assert position.event == "stream"
    assert position.data["token"].startswith(f"{position.data['seq']}.")
    return position.data, everything[at + 2 :]


@pytest.mark.parametrize("counter", NUMBERINGS)
async def test_a_flushall_mid_stream_earns_a_resync_and_every_frame_after_it_nothing_counted(
    redis_server: RedisServer, counter: int | None
) -> None:
    """Both processes stay subscribed through the flush: nothing is missed, nothing is counted."""
    ports = free_port(), free_port()
    url = "ws://127.0.0.1:{}/ws/news".format
    async with running(backplane(ports[0], redis_server.url)), running(backplane(ports[1], redis_server.url)):
        reader = await connect_when_up(url(ports[0]))
        talker = await connect_when_up(url(ports[1]))
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        start = (await joined(reader))[-1].data
        await joined(talker)
        for n in range(30):
            await talker.emit("say", {"room": "lobby", "n": n})
        before, _ = await read_lobby(reader, 30)
        assert contiguous(before, start["seq"])
        await said(talker, 30)

        flush(redis_server, counter)
        for n in range(100):
            await talker.emit("say", {"room": "lobby", "n": f"after {n}"})
        frames, everything = await read_lobby(reader, 100)
        assert [frame.data["n"] for frame in frames] == [f"after {n}" for n in range(100)]
        position, rest = after_the_resync(everything)
        assert position["epoch"] != start["epoch"]  # the old tokens mean nothing to the new Redis
        assert len(rest) == 100  # the resync came before the first frame after the flush
        assert contiguous(rest, position["seq"])
        if counter is not None:
            assert [frame.seq for frame in rest] == list(range(counter + 1, counter + 101))
        await read_lobby(talker, 100)
        for client in (reader, talker):
            assert (await status(client))["missed"] == 0
            client.close()


async def emit_while_unsubscribed(redis_server: RedisServer, counter: int | None, count: int) -> list[int]:
    """Kill the servers' subscriptions, flush Redis, and publish ``count`` frames to the lobby from
    an Emitter while they subscribe again; how many processes received each."""

    def publish() -> list[int]:
        with Emitter(redis_server.url) as emitter, redis_server.client() as admin:
            assert admin.client_kill_filter(_type="pubsub") >= 1
            flush(redis_server, counter)
            # The declaration a server process writes when it connects: an Emitter's frames are
            # numbered once it is there (the flush took it).
            admin.hset(KEYS.conf, "/news", conf_value(60, SIZE))
            return [emitter.emit("/news", "said", {"n": n}, room="lobby") for n in range(count)]

    return await asyncio.to_thread(publish)


async def through(client: WebSocketTestClient, last: str) -> list[Any]:
    """Every frame of the lobby until the "said" one whose ``n`` is ``last``, that one included."""
    received: list[Any] = []
    while not received or received[-1].data.get("n") != last:
        _, frames = await read_lobby(client, 1)
        received += frames
    return received


@pytest.mark.parametrize("counter", NUMBERINGS)
async def test_frames_of_the_new_numbering_no_longer_kept_are_counted_exactly(
    redis_server: RedisServer, counter: int | None
) -> None:
    """The flush comes while the process resubscribes, and more frames of the new numbering go by
    unheard than Redis keeps: the members resync, get the kept ones, and the process counts the
    rest, exactly."""
    port = free_port()
    # Reconnecting after 0.5 s at the earliest: the 100 frames after the kill go out meanwhile.
    env = {"TWS_RETRY_BASE": "1.0", "TWS_RECOVER_SIZE": str(SIZE)}
    async with running(backplane(port, redis_server.url), env=env):
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/news")
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        start = (await joined(client))[-1].data
        with Emitter(redis_server.url) as emitter:
            for n in range(5):
                assert emitter.emit("/news", "said", {"n": f"before {n}"}, room="lobby") == 1
        before, _ = await read_lobby(client, 5)
        assert contiguous(before, start["seq"])

        receivers = await emit_while_unsubscribed(redis_server, counter, 100)
        assert receivers.count(0) > SIZE  # more went by unheard than Redis keeps
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        with Emitter(redis_server.url) as emitter:
            assert emitter.emit("/news", "said", {"n": "after"}, room="lobby") == 1
        position, rest = after_the_resync(await through(client, "after"))
        got = [frame for frame in rest if frame.event == "said"]
        assert got[-1].data["n"] == "after"
        assert contiguous(got, position["seq"])  # from the resync on, nothing more is missing
        if counter is not None:
            assert got[-1].seq == counter + 101
        # The 101 frames of the new numbering: what the client did not get is what is counted.
        missed = (await status(client))["missed"]
        print(f"101 new frames: {len(got)} delivered after the resync, {missed} missed")  # noqa: T201
        assert missed > 0
        assert missed == 101 - len(got)
        client.close()
