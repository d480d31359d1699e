"""Recovery shared through Redis: a client that drops from one process and comes back to another."""

from __future__ import annotations

import asyncio
import gc
import json
import urllib.parse
import weakref
from pathlib import Path
from typing import Any

import pytest

from tests.backplane_app import news_app
from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.servers import backplane, backplane_script, connect_when_up, free_port, running
from tests.test_recovery import ODD_REQUEST, resyncs_and_positions
from tornado_websockets import recovery
from tornado_websockets.broker_redis import CONNECTED, DEFAULT_CHANNEL, UNREACHABLE, RedisBroker
from tornado_websockets.emitter import Emitter
from tornado_websockets.recovery_redis import ReplayKeys, SharedReplay, missed
from tornado_websockets.testing import WebSocketTestClient, serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

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
    assert keys.base("lobby") == "app:replay:/news:lobby:base"
    assert keys.frames("*") == "app:replay:/news:*:frames"


# Two server processes -----------------------------------------------------------------------------


def recover_query(epoch: str, streams: dict[str, int], tokens: dict[str, str] | None = None) -> str:
    request = {"epoch": epoch, "streams": streams, "tokens": tokens or {}}
    return "?recover=" + urllib.parse.quote(json.dumps(request))


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
        tokens = {"lobby": position["token"]}
        back = await connect_when_up(
            url(ports[1]) + recover_query(position["epoch"], {"lobby": first}, tokens)
        )
        frames = await joined(back)
        assert [(f.data["n"], f.seq) for f in frames[:-1]] == [(n, first + 1 + n) for n in range(10)]
        assert frames[-1].data["seq"] == first + 10
        assert frames[-1].data["epoch"] == position["epoch"]
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
        again = await connect_when_up(
            url(ports[0]) + recover_query(position["epoch"], {"lobby": first + 12}, tokens)
        )
        frames = await joined(again)
        assert [f.event for f in frames] == ["resync", "stream"]
        assert frames[0].data == {"stream": "lobby"}
        assert frames[1].data["seq"] == first + 12 + SIZE + 1

        # A client that comes with another epoch (Redis lost its data, say) resyncs as well.
        stale = await connect_when_up(url(ports[0]) + recover_query("another", {"lobby": 1}))
        assert [f.event for f in await joined(stale)] == ["resync", "stream"]

        # The right epoch and a recent position, but no token the servers handed out: resync, on
        # either process (the secret that signs positions is shared through Redis).
        latest = frames[1].data["seq"]
        for port in ports:
            intruder = await connect_when_up(
                url(port) + recover_query(position["epoch"], {"lobby": latest - 3})
            )
            assert [f.event for f in await joined(intruder)] == ["resync", "stream"]
            intruder.close()
        for client in (talker, again, stale):
            client.close()


# What Redis loses, and a process that was not listening ------------------------------------------


async def status(client: WebSocketTestClient) -> dict[str, Any]:
    """The server process's backplane: state, reconnects, frames lost (``dropped``, ``missed``)."""
    return dict(await client.request("backplane"))


async def read_lobby(client: WebSocketTestClient, count: int) -> tuple[list[Any], list[Any]]:
    """Read until ``count`` "said" frames have come: (the said frames, every frame of the lobby)."""
    said_frames: list[Any] = []
    everything: list[Any] = []
    while len(said_frames) < count:
        frame = await room_frames(client, 1)
        everything += frame
        if frame[0].event == "said":
            said_frames.append(frame[0])
    return said_frames, everything


def contiguous(frames: list[Any], start: int) -> bool:
    return [frame.seq for frame in frames] == list(range(start + 1, start + 1 + len(frames)))


async def publish_while_unsubscribed(redis_server: RedisServer, count: int, kill_at: int) -> list[int]:
    """Publish ``count`` frames to /news's lobby from an Emitter, killing the servers' subscriptions
    (``CLIENT KILL TYPE pubsub``) after ``kill_at``; how many processes received each."""

    def publish() -> list[int]:
        receivers = []
        with Emitter(redis_server.url) as emitter, redis_server.client() as admin:
            for n in range(count):
                if n == kill_at:
                    assert admin.client_kill_filter(_type="pubsub") >= 1
                receivers.append(emitter.emit("/news", "said", {"n": n}, room="lobby"))
        return receivers

    return await asyncio.to_thread(publish)


async def test_frames_published_while_a_process_resubscribes_are_read_back_from_the_stream(
    redis_server: RedisServer,
) -> None:
    port = free_port()
    # Reconnecting after 0.5 s at the earliest: the 300 frames after the kill go out meanwhile.
    async with running(backplane(port, redis_server.url), env={"TWS_RETRY_BASE": "1.0"}):
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/news")
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        position = (await joined(client))[-1].data
        receivers = await publish_while_unsubscribed(redis_server, 400, kill_at=100)
        assert receivers.count(0) > 0  # some frames reached no process: a gap the server must fill
        frames, everything = await read_lobby(client, 400)
        assert [frame.data["n"] for frame in frames] == list(range(400))
        assert contiguous(frames, position["seq"])
        assert [frame.event for frame in everything] == ["said"] * 400  # no resync
        backplane_status = await status(client)
        assert backplane_status["reconnects"] >= 1
        assert backplane_status["missed"] == 0
        client.close()


async def test_frames_no_longer_kept_after_resubscribing_earn_a_resync_and_are_counted(
    redis_server: RedisServer,
) -> None:
    port = free_port()
    env = {"TWS_RETRY_BASE": "1.0", "TWS_RECOVER_SIZE": str(SIZE)}
    async with running(backplane(port, redis_server.url), env=env):
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/news")
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        position = (await joined(client))[-1].data
        receivers = await publish_while_unsubscribed(redis_server, 400, kill_at=100)
        assert receivers.count(0) > SIZE  # more frames went by unheard than Redis keeps
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        with Emitter(redis_server.url) as emitter:
            assert emitter.emit("/news", "said", {"n": "after"}, room="lobby") == 1
        received: list[Any] = []
        while not received or received[-1].data.get("n") != "after":
            received += await room_frames(client, 1)
        said_frames = [frame for frame in received if frame.event == "said"]
        events = [frame.event for frame in received]
        assert "resync" in events
        resync_at = events.index("resync")
        resumed = received[resync_at + 1]  # the new position, signed, from which it goes on
        assert resumed.event == "stream"
        assert resumed.data["token"].startswith(f"{resumed.data['seq']}.")
        assert contiguous(said_frames[:resync_at], position["seq"])
        assert contiguous([f for f in received[resync_at + 2 :] if f.event == "said"], resumed.data["seq"])
        # Exactly the frames its client never got are counted as missed by the process.
        got = {frame.data["n"] for frame in said_frames} - {"after"}
        assert (await status(client))["missed"] == 400 - len(got)
        client.close()


@pytest.mark.parametrize("loss", ["flushall", "restart"])
async def test_a_redis_that_lost_its_data_earns_a_resync_and_own_emits_still_arrive(
    redis_server: RedisServer, loss: str
) -> None:
    port = free_port()
    async with running(backplane(port, redis_server.url)):
        reader = await connect_when_up(f"ws://127.0.0.1:{port}/ws/news")
        talker = await connect_when_up(f"ws://127.0.0.1:{port}/ws/news")
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        await joined(reader)
        await joined(talker)
        await talker.emit("say", {"room": "lobby", "n": "before"})
        [(_, before)] = await said(reader, 1)
        await said(talker, 1)
        if loss == "flushall":
            with redis_server.client() as admin:
                admin.flushall()  # the recovery declarations go with everything else
        else:
            redis_server.kill()
            redis_server.start()
            await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        # This process's own emit on the same process: numbered by the new Redis, delivered here.
        for attempt in range(50):
            await talker.emit("say", {"room": "lobby", "n": "after"})
            try:
                frames, everything = await read_lobby(reader, 1)
                break
            except TimeoutError:  # the emit went out while the process was reconnecting
                assert attempt < 49
        events = [frame.event for frame in everything]
        assert events[-1] == "said"
        assert frames[0].data["n"] == "after"
        assert "resync" in events  # its old position means nothing to the new Redis
        position = everything[events.index("resync") + 1]
        assert position.event == "stream"
        assert frames[0].seq == position.data["seq"] + 1 != before + 1
        for client in (reader, talker):
            client.close()


async def test_a_redis_at_maxmemory_still_delivers_every_emit_without_reconnecting(
    redis_server: RedisServer,
) -> None:
    port = free_port()
    async with running(backplane(port, redis_server.url)):
        reader = await connect_when_up(f"ws://127.0.0.1:{port}/ws/news")
        talker = await connect_when_up(f"ws://127.0.0.1:{port}/ws/news")
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        await joined(reader)
        await joined(talker)
        with redis_server.client() as admin:
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) // 2)
        for n in range(30):
            await talker.emit("say", {"room": "lobby", "n": n})
        frames, _ = await read_lobby(reader, 30)
        assert [frame.data["n"] for frame in frames] == list(range(30))  # not numbered: Redis refused
        backplane_status = await status(reader)
        assert backplane_status["reconnects"] == 0
        assert backplane_status["state"] == "connected"
        for client in (reader, talker):
            client.close()


async def test_a_path_missing_from_the_declarations_still_gets_its_own_emits(
    redis_server: RedisServer,
) -> None:
    """A WebSocket made after the broker connected, or a declaration evicted: the path is not in
    Redis's hash, and the process's own emits must reach its clients all the same, numbered."""
    news = WebSocket("/late", recover=60)

    @news.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        news.emit("said", data)

    broker = RedisBroker(redis_server.url)
    TornadoWrapper.use_broker(broker)
    async with serve() as server:
        await wait_until(lambda: broker.state == CONNECTED)
        client = await server.connect("/late")
        position = await client.wait_for("stream")
        with redis_server.client() as admin:
            assert admin.hdel(ReplayKeys(broker.channel, "/late").conf, "/late") == 1
        await client.emit("say", {"n": 1})
        frame = await client.receive()
        while frame.event != "said":
            frame = await client.receive()
        assert (frame.data, frame.seq) == ({"n": 1}, position["seq"] + 1)
        with redis_server.client() as admin:  # declared again, for the Emitters
            assert admin.hget(ReplayKeys(broker.channel, "/late").conf, "/late") == b"60 1000"
        client.close()


# A connection that comes while the backplane connects ----------------------------------------------


async def positions(client: WebSocketTestClient, count: int) -> dict[str, dict[str, Any]]:
    """The next ``count`` positions the client is handed, by stream (any other frame fails the test)."""
    found: dict[str, dict[str, Any]] = {}
    while len(found) < count:
        frame = await client.receive(timeout=30)
        assert frame.event == "stream", frame
        found[frame.data["stream"]] = frame.data
    return found


async def test_a_client_that_comes_before_redis_is_up_gets_its_positions_once_it_is(tmp_path: Path) -> None:
    """Issue 28 §2: the catch-up found the broker connecting, gave up and wrote no position, ever."""
    later = RedisServer(tmp_path)  # not started yet: the broker keeps trying to connect
    news = news_app()
    broker = RedisBroker(later.url, retry_base=0.05, retry_cap=0.2)
    TornadoWrapper.use_broker(broker)
    try:
        async with serve() as server:
            client = await server.connect("/news")
            assert await client.request("join", {"room": "lobby"}) == ["lobby"]
            gone = await server.connect("/news")
            await gone.request("join", {"room": "lobby"})
            closed = weakref.ref(news.handlers[-1])
            gone.close()
            await wait_until(lambda: len(news.handlers) == 1)
            # The connection that closed while it waited is not kept for the backplane.
            gc.collect()
            assert closed() is None
            assert broker.state != CONNECTED
            assert not [frame for frame in client.buffered() if frame.event == "stream"]

            await asyncio.to_thread(later.start)
            found = await positions(client, 2)
            assert set(found) == {"*", "lobby"}
            for stream, position in found.items():
                assert position["token"].startswith(f"{position['seq']}."), stream
            # The position is Redis's: the next frame of the room follows it without a gap.
            await client.emit("say", {"room": "lobby", "n": 1})
            assert await said(client, 1) == [(1, found["lobby"]["seq"] + 1)]
            client.close()
    finally:
        later.stop()


async def test_connections_past_the_waiting_limit_get_a_resync_and_no_position(tmp_path: Path) -> None:
    later = RedisServer(tmp_path)
    news_app()
    broker = RedisBroker(later.url, retry_base=0.05, retry_cap=0.2)
    broker.WAITING_LIMIT = 1
    TornadoWrapper.use_broker(broker)
    try:
        async with serve() as server:
            waiting = await server.connect("/news")
            assert await waiting.request("join", {"room": "lobby"}) == ["lobby"]  # one waits, two streams
            query = recover_query("some epoch", {"*": 4}, {"*": "4.x"})
            refused = await server.connect("/news" + query)
            assert await refused.wait_for("resync") == {"stream": "*"}  # at once, Redis still down
            await asyncio.to_thread(later.start)
            assert set(await positions(waiting, 2)) == {"*", "lobby"}
            assert not [frame for frame in refused.buffered() if frame.event == "stream"]
            for client in (waiting, refused):
                client.close()
    finally:
        later.stop()


async def test_a_client_that_comes_back_while_redis_is_unreachable_recovers_once_it_is_back(
    redis_server: RedisServer,
) -> None:
    news_app()
    # A frozen Redis is found out after a PING unanswered for a keepalive.
    broker = RedisBroker(redis_server.url, retry_base=0.05, retry_cap=0.2, keepalive=0.3, timeout=0.5)
    TornadoWrapper.use_broker(broker)
    async with serve() as server:
        await wait_until(lambda: broker.state == CONNECTED, timeout=20)
        reader = await server.connect("/news")
        position = (await joined(reader))[-1].data
        reader.close()
        with Emitter(redis_server.url) as emitter:  # three frames it misses, kept by Redis
            for n in range(3):
                assert emitter.emit("/news", "said", {"n": n}, room="lobby") == 1
        redis_server.pause()
        try:
            await wait_until(lambda: broker.state == UNREACHABLE, timeout=20)
            tokens = {"lobby": position["token"]}
            back = await server.connect(
                "/news" + recover_query(position["epoch"], {"lobby": position["seq"]}, tokens)
            )
            assert await back.request("join", {"room": "lobby"}) == ["lobby"]
        finally:
            redis_server.resume()
        frames = await room_frames(back, 4)
        assert [(f.event, f.data.get("n"), f.seq) for f in frames[:3]] == [
            ("said", n, position["seq"] + 1 + n) for n in range(3)
        ]
        assert frames[3].event == "stream"
        assert frames[3].data["seq"] == position["seq"] + 3
        back.close()


async def test_any_recover_request_ends_in_a_resync_and_a_position_per_stream(
    redis_server: RedisServer,
) -> None:
    """Issue 28 §6, through Redis: "².x" crashed the catch-up task, held frames and all."""
    news_app()
    broker = RedisBroker(redis_server.url)
    TornadoWrapper.use_broker(broker)
    async with serve() as server:
        await wait_until(lambda: broker.state == CONNECTED, timeout=20)
        talker = await server.connect("/news")
        position = (await joined(talker))[-1].data
        query = "?recover=" + urllib.parse.quote(json.dumps({"epoch": position["epoch"], **ODD_REQUEST}))
        odd = await server.connect("/news" + query)
        assert await odd.request("join", {"room": "lobby"}) == ["lobby"]
        resynced, found = await resyncs_and_positions(odd)
        assert resynced == ["*", "lobby"]
        assert found["lobby"] == position["seq"]
        await talker.emit("say", {"room": "lobby", "n": 1})
        assert await said(odd, 1) == [(1, position["seq"] + 1)]
        for client in (talker, odd):
            client.close()


# A client that comes back while someone talks -----------------------------------------------------


async def test_missed_frames_come_before_a_frame_sent_while_the_client_joins(
    redis_server: RedisServer,
) -> None:
    """Issue 28 §1: back on the process where someone talks, joining while a new frame is sent, the
    client got ``[99, 0, 1, 2, 3]``: its catch-up waited in its order behind that frame, which waits
    for its number from Redis. Many trials, for the race comes in most but not all of them."""
    ports = free_port(), free_port()
    url = "ws://127.0.0.1:{}/ws/news".format
    async with running(backplane(ports[0], redis_server.url)), running(backplane(ports[1], redis_server.url)):
        talker = await connect_when_up(url(ports[1]))
        await connect_when_up(url(ports[0]))
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        await joined(talker)
        for trial in range(30):
            reader = await connect_when_up(url(ports[0]))
            position = (await joined(reader))[-1].data
            reader.close()
            for n in range(4):
                await talker.emit("say", {"room": "lobby", "n": n})
            await said(talker, 4)
            query = recover_query(position["epoch"], {"lobby": position["seq"]}, {"lobby": position["token"]})
            back = await connect_when_up(url(ports[1]) + query)
            # The join first, the new frame right behind it, from the talker on the same process.
            await asyncio.gather(
                back.request("join", {"room": "lobby"}), talker.emit("say", {"room": "lobby", "n": 99})
            )
            frames = await room_frames(back, 6)
            seen = [(f.event, f.data["n"] if f.event == "said" else f.data["seq"]) for f in frames]
            first = position["seq"]
            assert [f.data["n"] for f in frames if f.event == "said"] == [0, 1, 2, 3, 99], (trial, seen)
            assert [f.seq for f in frames if f.event == "said"] == list(range(first + 1, first + 6)), seen
            # Its position comes once, after the missed frames, at the number of the frame before it.
            [at] = [i for i, f in enumerate(frames) if f.event == "stream"]
            assert at >= 4, (trial, seen)
            assert frames[at].data["seq"] == frames[at - 1].seq, (trial, seen)
            await said(talker, 1)
            back.close()
        talker.close()


# Tokens: once, and not after leaving ---------------------------------------------------------------


async def test_a_token_recovers_once_on_any_process_and_leaving_revokes_it(redis_server: RedisServer) -> None:
    """Issue 28 §6: one token recovered on any number of connections, and after ``left``."""
    ports = free_port(), free_port()
    url = "ws://127.0.0.1:{}/ws/news".format
    async with running(backplane(ports[0], redis_server.url)), running(backplane(ports[1], redis_server.url)):
        talker = await connect_when_up(url(ports[1]))
        reader = await connect_when_up(url(ports[0]))
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        await joined(talker)
        position = (await joined(reader))[-1].data
        epoch, first = position["epoch"], position["seq"]
        reader.close()

        async def say(*numbers: int) -> None:
            for n in numbers:
                await talker.emit("say", {"room": "lobby", "n": n})
            await said(talker, len(numbers))

        async def back_to(port: int, seq: int, token: str) -> tuple[WebSocketTestClient, list[Any]]:
            client = await connect_when_up(url(port) + recover_query(epoch, {"lobby": seq}, {"lobby": token}))
            return client, await joined(client)

        await say(0, 1)
        back, frames = await back_to(ports[1], first, position["token"])
        assert [f.data.get("n") for f in frames[:-1]] == [0, 1]
        fresh = frames[-1].data
        # The same token on another connection, on the other process: resync, nothing replayed.
        copy, frames = await back_to(ports[0], first, position["token"])
        assert [f.event for f in frames] == ["resync", "stream"]
        copy.close()
        # The newest token, handed with the recovered position, recovers the next drop.
        back.close()
        await say(2)
        again, frames = await back_to(ports[0], fresh["seq"], fresh["token"])
        assert [(f.event, f.data.get("n")) for f in frames[:-1]] == [("said", 2)]
        kept = frames[-1].data
        # Leaving the room revokes its tokens: kept after "left", it recovers nothing sent since.
        assert await again.request("leave", {"room": "lobby"}) == []
        again.close()
        # The revocation reaches Redis one round trip after the leave (docs/recovery.rst, Tokens):
        # wait for it, as a client coming back takes longer than that to reconnect.
        grant = recovery.token_grant(kept["token"])
        assert grant is not None
        await wait_until(lambda: bool(redis_server.client().keys(f"*:grant:{grant}")))
        await say(3, 4)
        out, frames = await back_to(ports[1], kept["seq"], kept["token"])
        assert [f.event for f in frames] == ["resync", "stream"]
        assert frames[-1].data["seq"] == kept["seq"] + 2
        for client in (talker, out):
            client.close()
