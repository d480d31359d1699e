"""The Redis backplane against a real redis-server: brokers in this process, then real server processes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.servers import backplane, backplane_script, connect_when_up, free_port, running
from tornado_websockets import delivery, metrics, prometheus
from tornado_websockets.broker import Envelope
from tornado_websockets.broker_redis import (
    CONNECTED,
    DEFAULT_CHANNEL,
    STOPPED,
    UNREACHABLE,
    RedisBroker,
    backoff_delay,
    split_url,
)
from tornado_websockets.testing import WebSocketTestClient
from tornado_websockets.tornadowrapper import BROKER_STOP_TIMEOUT, SHUTDOWN_GRACE, TornadoWrapper
from tornado_websockets.websocket import WebSocket

LOST = (delivery.BACKPLANE_UNREACHABLE, "/p")


# Pure parts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "rest", "channel"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", None),
        ("redis://h:1/2?channel=app", "redis://h:1/2", "app"),
        ("redis://h:1/2?socket_timeout=3&channel=app", "redis://h:1/2?socket_timeout=3", "app"),
        ("redis://h:1/2?channel=", "redis://h:1/2", None),
        ("rediss://:secret@h:1/0?channel=a%3Ab", "rediss://:secret@h:1/0", "a:b"),
        ("unix:///run/redis.sock?db=1&channel=x", "unix:///run/redis.sock?db=1", "x"),
    ],
)
def test_split_url(url: str, rest: str, channel: str | None) -> None:
    assert split_url(url) == (rest, channel)


def test_channel_from_url_argument_or_default_and_password_kept_out_of_repr() -> None:
    assert RedisBroker("redis://h:1/0").channel == DEFAULT_CHANNEL
    assert RedisBroker("redis://h:1/0?channel=app").channel == "app"
    assert RedisBroker("redis://h:1/0?channel=app", channel="other").channel == "other"
    broker = RedisBroker("redis://user:hunter2@h:1/0")
    assert "hunter2" not in repr(broker)
    assert "user:***@h:1" in repr(broker)
    assert broker.cross_process


@pytest.mark.parametrize(
    "options",
    [
        {"queue_size": 0},
        {"batch_size": -1},
        {"queue_size": True},
        {"retry_base": 0},
        {"keepalive": 0},
        {"timeout": -1.0},
        {"presence_ttl": 0},
    ],
)
def test_options_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="should be a positive"):
        RedisBroker("redis://h:1/0", **options)


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    for attempt, full in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (6, 5.0), (10_000, 5.0)]:
        delays = {backoff_delay(attempt, 0.1, 5.0) for _ in range(50)}
        assert all(full / 2 <= delay <= full for delay in delays), (attempt, delays)
        assert len(delays) > 1  # jittered: processes do not retry in lockstep


# Brokers in this process, against a real redis-server ----------------------------------------------


class Receiver:
    """A started broker and what it has received."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker
        self.received: list[Envelope] = []

    async def start(self) -> Receiver:
        await self.broker.start(self.received.append)
        return self


@pytest.fixture
async def brokers(redis_server: RedisServer) -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    """Start brokers on the test's loop; all are stopped afterwards."""
    started: list[RedisBroker] = []

    async def start(**options: Any) -> Receiver:
        broker = RedisBroker(redis_server.url, **{"retry_base": 0.05, "retry_cap": 0.3, **options})
        started.append(broker)
        return await Receiver(broker).start()

    yield start
    for broker in started:
        await broker.stop()


def envelope(broker: RedisBroker, n: int, **fields: Any) -> Envelope:
    return Envelope("/p", b'{"event":"n","data":{"n":%d}}' % n, origin=broker.id, **fields)


async def test_one_publish_per_emit_reaches_every_other_process_in_order(
    redis_server: RedisServer, brokers: Callable[..., Awaitable[Receiver]]
) -> None:
    one, two, three = [await brokers() for _ in range(3)]
    await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 3)
    # Subscribed in Redis's eyes may come a moment before the broker says so itself.
    await wait_until(lambda: all(r.broker.state == CONNECTED for r in (one, two, three)))
    before = redis_server.publish_calls()
    sent = [
        envelope(one.broker, n, room="lobby" if n % 2 else None, skip="c1" if n == 3 else None)
        for n in range(200)
    ]
    for item in sent:
        one.broker.publish(item)
    await wait_until(lambda: len(two.received) == len(three.received) == 200)
    assert two.received == sent  # in order, room and skip intact
    assert three.received == sent
    assert one.received == []  # a process never gets its own emits back
    assert redis_server.publish_calls() - before == 200  # one PUBLISH per emit, not one per process
    assert delivery.dropped() == {}


async def test_publish_sync_from_a_thread_and_the_queue_flushed_on_stop(
    redis_server: RedisServer, brokers: Callable[..., Awaitable[Receiver]]
) -> None:
    one, two = await brokers(), await brokers()
    await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2)
    worker = RedisBroker(redis_server.url)  # a view's process: never started, no loop of its own
    receivers = await asyncio.to_thread(worker.publish_blocking, envelope(worker, 1))
    assert receivers == 2
    await asyncio.to_thread(worker.publish_sync, envelope(worker, 2))
    await wait_until(lambda: len(one.received) == 2)
    assert [e.frame for e in one.received] == [envelope(worker, 1).frame, envelope(worker, 2).frame]
    worker.close_sync()

    for n in range(100):
        one.broker.publish(envelope(one.broker, n))
    await one.broker.stop()  # what is queued is published before the connection closes
    await wait_until(lambda: len(two.received) == 102)
    assert one.broker.state == STOPPED
    one.broker.publish(envelope(one.broker, 0))  # after stop: counted, not kept
    assert delivery.dropped() == {LOST: 1}


async def test_ws_emit_in_a_worker_loop_without_a_server_is_published(
    redis_server: RedisServer, brokers: Callable[..., Awaitable[Receiver]]
) -> None:
    server = await brokers()  # a server process's broker
    await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1)
    worker = TornadoWrapper.use_broker(redis_server.url)  # an asyncio worker: a loop, no server
    feed = WebSocket("/p")
    feed.emit("n", {"n": 1})  # from a coroutine of that loop, as the worker's code would
    await wait_until(lambda: len(server.received) == 1)
    assert server.received[0].frame == envelope(worker, 1).frame
    worker.close_sync()


async def test_the_queue_is_bounded_and_overflow_counted(
    redis_server: RedisServer, brokers: Callable[..., Awaitable[Receiver]]
) -> None:
    other = await brokers()
    broker = RedisBroker(redis_server.url, queue_size=3)
    for n in range(5):  # not started yet: the first three wait, the others do not fit
        broker.publish(envelope(broker, n))
    assert delivery.dropped() == {LOST: 2}
    await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1)
    await broker.start(lambda envelope: None)
    try:
        await wait_until(lambda: len(other.received) == 3)
        assert [e.frame for e in other.received] == [envelope(broker, n).frame for n in range(3)]
    finally:
        await broker.stop()


async def test_garbage_on_the_channel_and_failing_delivery_are_logged_and_survived(
    redis_server: RedisServer, brokers: Callable[..., Awaitable[Receiver]], caplog: pytest.LogCaptureFixture
) -> None:
    one = await brokers()
    calls: list[Envelope] = []

    def deliver(item: Envelope) -> None:
        calls.append(item)
        if len(calls) == 1:
            raise RuntimeError("a bug in delivery")

    two = RedisBroker(redis_server.url)
    await two.start(deliver)
    try:
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2)
        with redis_server.client() as client:
            client.publish(DEFAULT_CHANNEL, b"no header line")
            client.publish(DEFAULT_CHANNEL, b"[1, 2]\n{}")
        one.broker.publish(envelope(one.broker, 1))
        one.broker.publish(envelope(one.broker, 2))
        await wait_until(lambda: len(calls) == 2)
        assert [e.frame for e in calls] == [envelope(one.broker, 1).frame, envelope(one.broker, 2).frame]
        assert two.state == CONNECTED
    finally:
        await two.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "tornado_websockets.broker_redis"]
    assert sum("not an envelope" in m for m in messages) == 4  # two messages, seen by both brokers
    assert any("Delivering an emit from another process" in m for m in messages)


async def test_outage_drops_counted_then_reconnects(
    redis_server: RedisServer, brokers: Callable[..., Awaitable[Receiver]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "tornado_websockets.broker_redis")
    one, two = await brokers(), await brokers()
    await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2)
    redis_server.kill()
    await wait_until(lambda: one.broker.state == two.broker.state == UNREACHABLE)
    for n in range(3):
        one.broker.publish(envelope(one.broker, n))  # returns at once; nothing reaches Redis
    assert delivery.dropped() == {LOST: 3}
    worker = RedisBroker(redis_server.url, timeout=1.0)
    assert worker.publish_blocking(envelope(worker, 9)) == 0  # the sync path counts too
    assert worker.publish_blocking(envelope(worker, 9)) == 0
    assert delivery.dropped() == {LOST: 5}

    redis_server.start()
    await wait_until(lambda: one.broker.state == two.broker.state == CONNECTED)
    one.broker.publish(envelope(one.broker, 10))
    await wait_until(lambda: len(two.received) == 1)
    assert two.received[0].frame == envelope(one.broker, 10).frame  # nothing from the outage, then live
    assert worker.publish_blocking(envelope(worker, 11)) == 2
    worker.close_sync()
    assert (one.broker.reconnects, two.broker.reconnects) == (1, 1)
    warnings_logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum(" lost (" in m for m in warnings_logged) == 2  # once per broker, not once per retry
    assert sum("reached again" in m for m in warnings_logged) == 3  # two brokers and the sync path
    assert sum(" unreachable (" in m for m in warnings_logged) == 1  # the sync path, once for two failures
    assert any("Reconnecting to Redis backplane in" in r.getMessage() for r in caplog.records)


async def test_starting_while_redis_is_down(
    redis_server: RedisServer, brokers: Callable[..., Awaitable[Receiver]]
) -> None:
    redis_server.kill()
    one = await brokers()  # does not raise: the server starts whatever Redis does
    await wait_until(lambda: one.broker.state == UNREACHABLE)
    redis_server.start()
    await wait_until(lambda: one.broker.state == CONNECTED)
    assert one.broker.reconnects == 0  # it never had a connection to lose


async def test_a_frozen_redis_is_noticed_by_the_keepalive(
    redis_server: RedisServer, brokers: Callable[..., Awaitable[Receiver]]
) -> None:
    one = await brokers(keepalive=0.2, timeout=0.5)
    await wait_until(lambda: one.broker.state == CONNECTED)
    await asyncio.sleep(1.0)  # five quiet keepalive periods: PINGs answered, the connection kept
    assert (one.broker.state, one.broker.reconnects) == (CONNECTED, 0)
    redis_server.pause()  # the socket stays open; only the unanswered PING can tell
    try:
        await wait_until(lambda: one.broker.state == UNREACHABLE, timeout=10)
    finally:
        redis_server.resume()
    await wait_until(lambda: one.broker.state == CONNECTED, timeout=10)
    assert one.broker.reconnects == 1


async def test_stop_closes_every_connection_cleanly(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    def connections() -> int:
        with redis_server.client() as client:
            return len(client.client_list()) - 1  # not counting this one

    with warnings.catch_warnings():  # what earlier tests left to the collector is not ours to judge
        warnings.simplefilter("ignore")
        gc.collect()
    broker = RedisBroker(redis_server.url)
    for _ in range(2):  # stopped, it can start again
        await broker.start(lambda envelope: None)
        await wait_until(lambda: broker.state == CONNECTED)
        broker.publish(envelope(broker, 1))
        await asyncio.to_thread(broker.publish_sync, envelope(broker, 2))
        # Subscriber, publisher and sync client; the presence writer shares the publisher's pool,
        # which opens a second connection when both happen to send at once.
        await wait_until(lambda: connections() >= 3)
        await broker.stop()
        await broker.stop()  # twice is harmless
        await wait_until(lambda: connections() == 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    ours = [str(w.message) for w in caught if str(redis_server.port) in str(w.message)]
    assert ours == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_stop_ends_even_when_a_redis_command_loses_the_cancellation(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_time = redis.asyncio.Redis.time
    in_flight = asyncio.Event()

    async def time_losing_the_cancellation(self: redis.asyncio.Redis, *args: Any, **kwargs: Any) -> Any:
        # What redis-py 8.1 does now and then: a command cancelled while it runs returns normally.
        in_flight.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.5)
        return await real_time(self, *args, **kwargs)

    # The presence writer asks Redis's time first, on a connection of its own.
    monkeypatch.setattr(redis.asyncio.Redis, "time", time_losing_the_cancellation)
    broker = RedisBroker(redis_server.url)
    await broker.start(lambda envelope: None)
    await wait_until(lambda: broker.state == CONNECTED)
    await asyncio.wait_for(in_flight.wait(), 5)  # the presence write is under way
    started = time.monotonic()
    await asyncio.wait_for(broker.stop(), 10)
    assert time.monotonic() - started < 3  # the flush (1 s at most), then every loop ends at once
    assert broker.state == STOPPED
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no loop of the broker left running


async def test_metrics_report_the_backplane_state(
    redis_server: RedisServer, brokers: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await brokers()
    TornadoWrapper.use_broker(receiver.broker)
    await wait_until(lambda: receiver.broker.state == CONNECTED)
    assert metrics.snapshot()["backplane"] == {"kind": "RedisBroker", "state": "connected"}
    assert b'tws_backplane_state{kind="RedisBroker",state="connected"} 1.0' in prometheus.render()
    redis_server.kill()
    await wait_until(lambda: metrics.snapshot()["backplane"]["state"] == "unreachable")
    assert b'tws_backplane_state{kind="RedisBroker",state="unreachable"} 1.0' in prometheus.render()


# Real server processes ------------------------------------------------------------------------------


async def next_text(client: WebSocketTestClient) -> str:
    """The text of the next frame the client receives, whatever it is (so nothing slips between)."""
    frame = await client.receive()
    assert frame.event == "said", frame
    return str(frame.data["text"])


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_two_server_processes_rooms_emitter_and_views(redis_server: RedisServer) -> None:
    ports = free_port(), free_port()
    async with running(backplane(ports[0], redis_server.url)), running(backplane(ports[1], redis_server.url)):
        url = "ws://127.0.0.1:{}/ws/chat".format
        a_in, a_out = [await connect_when_up(url(ports[0])) for _ in range(2)]
        b_in, b_out = [await connect_when_up(url(ports[1])) for _ in range(2)]
        clients = (a_in, a_out, b_in, b_out)
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        pids = [(await client.request("whoami"))["pid"] for client in clients]
        assert pids[0] == pids[1] != pids[2] == pids[3]  # two processes, two clients on each
        for client in (a_in, b_in):
            assert await client.request("join", {"room": "lobby"}) == ["lobby"]

        await a_in.emit("say", {"room": "lobby", "text": "hi lobby", "skip_me": True})
        assert await b_in.wait_for("said") == {"text": "hi lobby", "pid": pids[0]}  # across processes
        await b_out.emit("say", {"text": "to all"})  # a broadcast, as a marker: whoever got "hi
        for client in clients:  # lobby" would get it before this one
            assert await next_text(client) == "to all"

        assert await backplane_script("emitter", redis_server.url, "lobby", "from a worker") == "2\n"
        assert [await next_text(client) for client in (a_in, b_in)] == ["from a worker"] * 2
        await backplane_script("emit", redis_server.url, "lobby", "from a view")  # ws.emit, no server loop
        assert [await next_text(client) for client in (a_in, b_in)] == ["from a view"] * 2
        await a_out.emit("say", {"text": "end"})
        for client in clients:  # nothing reached the clients outside the room meanwhile
            assert await next_text(client) == "end"
        for client in clients:
            client.close()


async def test_redis_outage_across_processes(redis_server: RedisServer) -> None:
    ports = free_port(), free_port()
    async with running(backplane(ports[0], redis_server.url)), running(backplane(ports[1], redis_server.url)):
        url = "ws://127.0.0.1:{}/ws/chat".format
        a, a2 = [await connect_when_up(url(ports[0])) for _ in range(2)]
        b = await connect_when_up(url(ports[1]))
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)

        async def states(expected: str) -> bool:
            return all([(await c.request("backplane"))["state"] == expected for c in (a, b)])

        await a.emit("say", {"text": "before"})
        assert [await next_text(c) for c in (a, a2, b)] == ["before"] * 3

        redis_server.kill()
        await eventually(lambda: states(UNREACHABLE))
        await a.emit("say", {"text": "during"})
        assert [await next_text(c) for c in (a, a2)] == ["during"] * 2  # local delivery goes on
        assert (await a.request("backplane"))["dropped"] == 1  # and the frame b missed is counted

        redis_server.start()
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        await eventually(lambda: states(CONNECTED))
        await a.emit("say", {"text": "after"})
        assert [await next_text(c) for c in (a, a2, b)] == ["after"] * 3  # b: "after", never "during"
        await b.emit("say", {"text": "back"})
        assert [await next_text(c) for c in (a, a2, b)] == ["back"] * 3
        for client in (a, a2, b):
            client.close()


async def test_redis_outage_under_load(redis_server: RedisServer) -> None:
    """A steady stream from one process while Redis dies and comes back: nothing else gives way."""
    ports = free_port(), free_port()
    async with (
        running(backplane(ports[0], redis_server.url)) as server_a,
        running(backplane(ports[1], redis_server.url)) as server_b,
    ):
        url = "ws://127.0.0.1:{}/ws/chat".format
        sender, watch_a, control_a = [await connect_when_up(url(ports[0])) for _ in range(3)]
        watch_b, control_b = [await connect_when_up(url(ports[1])) for _ in range(2)]
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)

        async def states(expected: str) -> bool:
            return all([(await c.request("backplane"))["state"] == expected for c in (control_a, control_b)])

        sent = 0
        stopping = asyncio.Event()
        got_a: list[int] = []  # what a client of the sending process received
        got_b: list[int] = []  # what a client of the other process received

        async def load() -> None:
            nonlocal sent
            while not stopping.is_set():
                for _ in range(5):
                    await sender.emit("say", {"text": str(sent)})
                    sent += 1
                await asyncio.sleep(0.01)

        async def collect(client: WebSocketTestClient, into: list[int]) -> None:
            while True:
                frame = await client.receive(timeout=60)
                if frame.event == "said":
                    into.append(int(frame.data["text"]))

        tasks = [asyncio.create_task(c) for c in (load(), collect(watch_a, got_a), collect(watch_b, got_b))]
        try:
            await wait_until(lambda: len(got_b) >= 100, timeout=20)  # across processes, under load

            redis_server.kill()
            killed_at = sent
            await eventually(lambda: states(UNREACHABLE))
            during = len(got_a)
            await wait_until(lambda: len(got_a) >= during + 200, timeout=20)  # local delivery goes on
            assert await states(UNREACHABLE)  # all of it while Redis was still down

            redis_server.start()
            await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
            await eventually(lambda: states(CONNECTED))
            resumed_at = sent
            await wait_until(lambda: bool(got_b) and got_b[-1] >= resumed_at, timeout=20)  # resumed

            stopping.set()
            await tasks[0]
            await wait_until(lambda: len(got_a) == sent, timeout=20)
        finally:
            stopping.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        assert got_a == list(range(sent))  # the local client got every frame, in order, outage or not
        assert got_b == sorted(set(got_b))  # at most once and in order across processes
        assert got_b[0] < killed_at < resumed_at <= got_b[-1]
        lost = set(range(sent)) - set(got_b)
        assert lost  # frames emitted during the outage never reached the other process...
        # ...those the sending process could not publish are counted; those Redis took while the
        # other process was not yet subscribed again are lost uncounted, as documented.
        assert 0 < (await control_a.request("backplane"))["dropped"] <= len(lost)
        assert server_a.poll() is None  # and neither server crashed
        assert server_b.poll() is None
        for client in (sender, watch_a, control_a, watch_b, control_b):
            client.close()


async def test_frames_a_resubscribing_process_did_not_hear_are_counted_by_the_publisher(
    redis_server: RedisServer,
) -> None:
    ports = free_port(), free_port()
    url = "ws://127.0.0.1:{}/ws/chat".format
    # Reconnecting after 0.5 s at the earliest: the frames below go out while one process is away.
    env = {"TWS_RETRY_BASE": "1.0"}
    async with (
        running(backplane(ports[0], redis_server.url), env=env),
        running(backplane(ports[1], redis_server.url), env=env),
    ):
        talker = await connect_when_up(url(ports[0]))
        listener = await connect_when_up(url(ports[1]))
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        await listener.request("join", {"room": "lobby"})
        await talker.emit("say", {"room": "lobby", "text": "before"})
        assert (await listener.wait_for("said"))["text"] == "before"
        with redis_server.client() as admin:  # one of the two subscriptions, whichever it is
            subscriber = next(c for c in admin.client_list() if c["sub"] != "0")
            admin.client_kill_filter(_id=subscriber["id"])
        for n in range(20):
            await talker.emit("say", {"room": "lobby", "text": str(n)})
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        await talker.emit("say", {"room": "lobby", "text": "after"})
        heard = []
        while not heard or heard[-1] != "after":
            heard.append((await listener.wait_for("said"))["text"])
        status = await talker.request("backplane")
        # The listener's process lost its subscription: the talker's counts what it did not hear
        # (backplane_missed). The talker's own: its backplane reconnects, and what it could not
        # publish meanwhile is counted as backplane_unreachable.
        counted = status["missed"] + status["dropped"]
        assert counted >= 1
        assert counted >= 21 - len(heard)  # every frame the listener missed is in the count
        for client in (talker, listener):
            client.close()


REDIS_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from tornado_websockets.tornadowrapper import TornadoWrapper
    from tornado_websockets.websocket import WebSocket

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    ws = WebSocket("/frozen", presence_events=True)

    @ws.on
    async def open(socket):
        socket.join("lobby")
        socket.emit("ready")

    TornadoWrapper.run(int(sys.argv[1]), address="127.0.0.1", broker=sys.argv[2])
    print("exited cleanly", flush=True)
    """
)


async def test_sigterm_with_a_frozen_redis_exits_within_the_grace(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    script = tmp_path / "frozen.py"
    script.write_text(REDIS_SCRIPT)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(script), str(port), redis_server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    try:
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/frozen")
        assert await client.wait_for("ready") == {}
        redis_server.pause()  # a hung Redis host: connections open, nothing answers
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert await client.wait_closed() == 1001
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)
        took = time.monotonic() - signalled
    finally:
        redis_server.resume()
        process.kill()
    assert process.returncode == 0, output
    assert b"exited cleanly" in output
    # The loop never waited on Redis: bounded by the grace and the broker's stop timeout.
    assert took < SHUTDOWN_GRACE + BROKER_STOP_TIMEOUT + 3, f"exited {took:.1f}s after SIGTERM\n{output!r}"
