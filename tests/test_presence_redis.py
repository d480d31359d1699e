"""Presence across server processes through Redis: who is where, joined/left once per user, a
killed process expiring, and presence writes that fail without touching delivery."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio.client

from tests.polling import wait_until
from tests.rawclient import RawClient
from tests.redis_server import RedisServer
from tests.servers import backplane, backplane_script, connect_when_up, free_port, running
from tornado_websockets import TornadoWrapper, WebSocket
from tornado_websockets.broker_redis import DEFAULT_CHANNEL, RedisBroker
from tornado_websockets.limits import Limits
from tornado_websockets.redis.presence import PresenceKeys, SharedPresence
from tornado_websockets.testing import WebSocketTestClient, serve
from tornado_websockets.websockethandler import WebSocketHandler

TTL = "1.5"  # seconds: how long a killed process's members stay listed


async def test_presence_spans_processes_and_a_killed_one_expires(redis_server: RedisServer) -> None:
    ports = free_port(), free_port()
    env = {"TWS_PRESENCE_TTL": TTL}
    url = "ws://127.0.0.1:{}/ws/chat".format
    async with (
        running(backplane(ports[0], redis_server.url), env=env),
        running(backplane(ports[1], redis_server.url), env=env) as doomed,
    ):
        a = await connect_when_up(url(ports[0]))
        b1, b2 = [await connect_when_up(url(ports[1])) for _ in range(2)]
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        ids = {
            name: (await client.request("whoami"))["id"]
            for name, client in (("a", a), ("b1", b1), ("b2", b2))
        }
        assert await b1.request("join", {"room": "lobby"}) == ["lobby"]
        assert await a.request("join", {"room": "lobby"}) == ["lobby"]

        async def seen(room: str | None = None) -> list[str]:
            return list((await a.request("who", {"room": room}))["connections"])

        everyone = sorted(ids.values())
        await _eventually(lambda: seen(), everyone)
        await _eventually(lambda: seen("lobby"), sorted([ids["a"], ids["b1"]]))
        listed = (await backplane_script("presence", redis_server.url)).split()
        assert sorted(listed) == everyone  # from a process with no server: presence_sync

        killed = asyncio.get_running_loop().time()
        os.kill(doomed.pid, signal.SIGKILL)  # no cleanup: its members must expire on their own
        await _eventually(lambda: seen(), [ids["a"]], timeout=float(TTL) * 4)
        # The documented bound: gone within presence_ttl of the last refresh (so of the kill), plus
        # the polling above (a tenth of a second and a round trip per query).
        assert asyncio.get_running_loop().time() - killed < float(TTL) + 1.0
        # Queries read their keys; none scans the keyspace.
        with redis_server.client() as admin:
            assert "cmdstat_scan" not in admin.info("commandstats")
        a.close()


async def announcements(client: WebSocketTestClient, event: str) -> dict[str, Any]:
    """The next ``joined`` or ``left`` frame (others, such as replies, are skipped)."""
    while True:
        frame = await client.receive()
        if frame.event in {"joined", "left"}:
            assert frame.event == event, frame
            return dict(frame.data)


async def test_joined_and_left_come_once_per_user_across_processes_and_after_a_kill(
    redis_server: RedisServer,
) -> None:
    ports = free_port(), free_port()
    env = {"TWS_PRESENCE_TTL": TTL}
    url = "ws://127.0.0.1:{}/ws/room?user={}".format
    async with (
        running(backplane(ports[0], redis_server.url), env=env),
        running(backplane(ports[1], redis_server.url), env=env) as doomed,
    ):
        bob = await connect_when_up(url(ports[0], "bob"))
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        await bob.request("join", {"room": "lobby"})
        alice0 = await connect_when_up(url(ports[0], "alice"))
        alice1 = await connect_when_up(url(ports[1], "alice"))
        carol0 = await connect_when_up(url(ports[0], "carol"))
        carol1 = await connect_when_up(url(ports[1], "carol"))

        await alice0.request("join", {"room": "lobby"})
        assert (await announcements(bob, "joined"))["user"] == "alice"
        # Alice again, from the other process, then Carol there: Bob's next one is Carol's, so
        # Alice's second connection announced nothing (that process writes them in order).
        await alice1.request("join", {"room": "lobby"})
        await carol1.request("join", {"room": "lobby"})
        assert (await announcements(bob, "joined"))["user"] == "carol"
        await carol0.request("join", {"room": "lobby"})

        # Alice closes one connection: still on the other process, so no left. Carol leaves on
        # both: Bob's next one is Carol's, after her last connection.
        alice0.close()
        await alice0.wait_closed()
        await carol0.request("leave", {"room": "lobby"})
        await carol1.request("leave", {"room": "lobby"})
        assert (await announcements(bob, "left"))["user"] == "carol"  # once, after her last one

        # Alice's remaining connection dies with its process: left, once the process expired.
        os.kill(doomed.pid, signal.SIGKILL)
        left = await asyncio.wait_for(announcements(bob, "left"), float(TTL) * 4 + 5)
        assert left == {"room": "lobby", "user": "alice", "name": "alice"}
        who = await bob.request("who", {"room": "lobby"})
        assert who == {"users": ["bob"], "connections": 1}
        bob.close()
        carol0.close()


async def test_presence_writes_failing_at_maxmemory_never_touch_delivery(redis_server: RedisServer) -> None:
    port = free_port()
    async with running(backplane(port, redis_server.url)):
        url = f"ws://127.0.0.1:{port}/ws/chat"
        listener = await connect_when_up(url)
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        await listener.request("join", {"room": "lobby"})
        with redis_server.client() as admin:
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) // 2)
            rejected = int(admin.info("stats").get("total_error_replies", 0))
        talkers = [await connect_when_up(url) for _ in range(5)]  # each a presence write refused
        for talker in talkers:
            await talker.request("join", {"room": "lobby"})
        for n in range(30):
            await talkers[n % 5].emit("say", {"room": "lobby", "text": str(n)})
        texts = [(await listener.wait_for("said"))["text"] for _ in range(30)]
        assert sorted(texts, key=int) == [str(n) for n in range(30)]  # five senders: any order
        status = await listener.request("backplane")
        # No reconnection storm (the finding: 66 in 3 s). Once, under a heavily loaded machine, a
        # single reconnection was seen in a full run, never in isolation: not a presence write's.
        assert status["reconnects"] <= 1
        assert status["state"] == "connected"
        with redis_server.client() as admin:
            assert int(admin.info("stats").get("total_error_replies", 0)) > rejected  # writes were refused
        for client in (listener, *talkers):
            client.close()


async def test_a_redis_full_before_the_server_connects_is_refusal_not_loss(redis_server: RedisServer) -> None:
    """Redis at maxmemory (noeviction) before the backplane connects: declaring the recovering paths
    is refused, which is no lost connection (it was taken for one: a reconnection every 40 ms)."""
    with redis_server.client() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)  # every write refused from the start
    port = free_port()
    async with running(backplane(port, redis_server.url)):
        listener = await connect_when_up(f"ws://127.0.0.1:{port}/ws/chat")
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        await listener.request("join", {"room": "lobby"})
        await listener.emit("say", {"room": "lobby", "text": "still here"})
        assert (await listener.wait_for("said"))["text"] == "still here"
        await asyncio.sleep(0.5)  # time for a storm of reconnections, if any
        status = await listener.request("backplane")
        assert status["state"] == "connected"
        assert status["reconnects"] == 0
        listener.close()


async def test_a_change_writes_what_changed_whatever_the_number_of_connections(
    redis_server: RedisServer,
) -> None:
    port = free_port()
    async with running(backplane(port, redis_server.url)):
        url = f"ws://127.0.0.1:{port}/ws/chat"
        clients = [await connect_when_up(url)]
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        clients += await asyncio.gather(*(connect_when_up(url) for _ in range(199)))
        key = f"{DEFAULT_CHANNEL}:members:/chat"
        with redis_server.client() as admin:
            await wait_until(lambda: admin.hlen(key) == 200, timeout=20)
            before = admin.info("commandstats")
            await clients[0].request("join", {"room": "lobby"})
            await wait_until(lambda: admin.hlen(f"{key}:lobby") == 1)
            after = admin.info("commandstats")
        written = {
            name: after[name]["calls"] - before.get(name, {"calls": 0})["calls"]
            for name in after
            if name in {"cmdstat_hset", "cmdstat_sadd", "cmdstat_set", "cmdstat_hincrby"}
        }
        # One member row, one entry, one count: not 200 rows rewritten (a metrics refresh may add one hset).
        assert written.get("cmdstat_hset", 0) <= 2
        assert written.get("cmdstat_sadd", 0) == 1
        assert written.get("cmdstat_hincrby", 0) == 1
        assert written.get("cmdstat_set", 0) == 0
        for client in clients:
            client.close()


async def _eventually(
    query: Callable[[], Awaitable[list[str]]], expected: list[str], timeout: float = 10.0
) -> None:
    """Ask until the answer is ``expected``: presence is shared within a round trip, not at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: list[str] = []
    while loop.time() < deadline:
        last = sorted(await query())
        if last == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"presence was {last}, expected {expected}")


async def test_a_process_that_stops_cleanly_sends_left_for_its_users_at_once(
    redis_server: RedisServer,
) -> None:
    ports = free_port(), free_port()
    url = "ws://127.0.0.1:{}/ws/room?user={}".format
    async with (
        running(backplane(ports[0], redis_server.url)),
        running(backplane(ports[1], redis_server.url)) as stopping,
    ):
        bob = await connect_when_up(url(ports[0], "bob"))
        dave = await connect_when_up(url(ports[1], "dave"))
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        await bob.request("join", {"room": "lobby"})
        await dave.request("join", {"room": "lobby"})
        assert (await announcements(bob, "joined"))["user"] == "dave"
        os.killpg(stopping.pid, signal.SIGTERM)  # a graceful shutdown: its sockets close first
        # Within the shutdown, not after the 15 s presence TTL.
        assert await asyncio.wait_for(announcements(bob, "left"), 10) == {
            "room": "lobby",
            "user": "dave",
            "name": "dave",
        }
        bob.close()


async def test_a_process_frozen_past_the_ttl_writes_its_members_again_when_it_resumes(
    redis_server: RedisServer,
) -> None:
    """Frozen (SIGSTOP) longer than the TTL, a process is reaped: its users get ``left``. Once it
    resumes it finds itself taken out and writes its members again: ``joined``, listed again,
    and a later departure sends ``left`` (the finding: invisible for the rest of its life)."""
    ports = free_port(), free_port()
    env = {"TWS_PRESENCE_TTL": TTL}
    url = "ws://127.0.0.1:{}/ws/room?user={}".format
    async with (
        running(backplane(ports[0], redis_server.url), env=env),
        running(backplane(ports[1], redis_server.url), env=env) as frozen,
    ):
        bob = await connect_when_up(url(ports[0], "bob"))
        alice = await connect_when_up(url(ports[1], "alice"))
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
        await bob.request("join", {"room": "lobby"})
        await alice.request("join", {"room": "lobby"})
        assert (await announcements(bob, "joined"))["user"] == "alice"

        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            left = await asyncio.wait_for(announcements(bob, "left"), float(TTL) * 4 + 5)
            assert left == {"room": "lobby", "user": "alice", "name": "alice"}
            assert await bob.request("who", {"room": "lobby"}) == {"users": ["bob"], "connections": 1}
        finally:
            os.kill(frozen.pid, signal.SIGCONT)

        joined = await asyncio.wait_for(announcements(bob, "joined"), float(TTL) * 4 + 5)
        assert joined == {"room": "lobby", "user": "alice", "name": "alice"}

        async def users() -> list[str]:
            return list((await bob.request("who", {"room": "lobby"}))["users"])

        await _eventually(users, ["alice", "bob"])
        # Listed on the resumed process's side too.
        assert (await alice.request("who", {"room": "lobby"}))["users"] == ["alice", "bob"]

        alice.close()  # a departure after the freeze is announced again
        left = await asyncio.wait_for(announcements(bob, "left"), 10)
        assert left == {"room": "lobby", "user": "alice", "name": "alice"}
        await _eventually(users, ["bob"])
        bob.close()


async def test_members_are_written_again_in_slices_that_let_other_work_run_after_redis_restarts(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis restarted empty: every member is written again, in pipelines of at most
    ``slice_size`` changes, with the loop serving other work between two (the finding: one
    pipeline, a 0.2-1.5 s stall).

    Real connections, each in ``TWS_PRESENCE_ROOMS`` rooms. A process here holds fewer than
    10,000 sockets (two descriptors each, 20,000 at most), so the presence entries of 10,000 or
    50,000 connections (one room each) are reached with more rooms per connection:
    ``TWS_PRESENCE_MEMBERS=5000 TWS_PRESENCE_ROOMS=3`` is 20,000 entries, ``8000`` and ``12``
    104,000. The longest loop stall is printed (``-s``), not asserted: the wall time, and the CPU
    time the loop spent in it (the machine is shared: the wall time includes waiting for a core),
    the garbage collector off.
    """
    connections = int(os.environ.get("TWS_PRESENCE_MEMBERS", "1000"))
    rooms = int(os.environ.get("TWS_PRESENCE_ROOMS", "4"))
    members = WebSocket("/members", limits=Limits(ping_interval=None))  # bare clients answer no ping

    @members.on
    async def open(socket: WebSocketHandler) -> None:
        for n in range(rooms):
            socket.join(f"r{n}")

    broker = TornadoWrapper.use_broker(RedisBroker(redis_server.url, retry_base=0.05, retry_cap=0.3))
    assert isinstance(broker, RedisBroker)
    keys = PresenceKeys(broker.channel)
    last_room = keys.members("/members", f"r{rooms - 1}")
    pipelines: list[int] = []  # the commands of each presence pipeline, in order
    events: list[str] = []  # "pipeline" and "tick", in the order they happened
    execute = redis.asyncio.client.Pipeline.execute

    async def spied(pipe: redis.asyncio.client.Pipeline, raise_on_error: bool = True) -> list[Any]:
        # Observes, changes nothing: presence's pipelines are those writing members.
        if any(
            args[0] == "HSET" and str(args[1]).startswith(f"{keys.channel}:members:")
            for args, _ in pipe.command_stack
        ):
            pipelines.append(len(pipe.command_stack))
            events.append("pipeline")
        return await execute(pipe, raise_on_error)

    async with serve() as server:
        clients: list[RawClient] = []
        while len(clients) < connections:
            batch = min(200, connections - len(clients))
            clients += await asyncio.gather(
                *(RawClient.connect(server.port, "/members") for _ in range(batch))
            )
        with redis_server.client() as admin:
            await wait_until(lambda: admin.hlen(last_room) == connections, timeout=120)
        monkeypatch.setattr(redis.asyncio.client.Pipeline, "execute", spied)

        loop = asyncio.get_running_loop()
        stalls: list[tuple[float, float]] = []  # (wall, CPU) seconds between two ticks

        async def ticker() -> None:
            wall, cpu = loop.time(), time.thread_time()
            while True:
                await asyncio.sleep(0.001)
                stalls.append((loop.time() - wall, time.thread_time() - cpu))
                wall, cpu = loop.time(), time.thread_time()
                events.append("tick")

        await asyncio.to_thread(redis_server.kill)
        clients.pop().close()  # a presence write while Redis is down: it fails
        sharing = broker.sharing
        assert sharing is not None
        await wait_until(lambda: not sharing.healthy, timeout=20)
        # A full garbage collection of a process holding thousands of connections stalls the loop
        # by itself (2 s seen at 5,000): off while measuring, so the figure is the rewrite's.
        gc.disable()
        try:
            await asyncio.to_thread(redis_server.start)  # empty: every member must be written again
            ticking = asyncio.create_task(ticker())
            connections -= 1
            with redis_server.client() as admin:
                await wait_until(lambda: admin.hlen(last_room) == connections, timeout=120)
                assert admin.hlen(keys.members("/members", None)) == connections
            ticking.cancel()
        finally:
            gc.enable()

        print(  # noqa: T201 - the figure the issue asks for
            f"\npresence rewrite after a Redis restart: {connections} connections x {rooms} rooms,"
            f" {connections * (rooms + 1)} entries, {len(pipelines)} pipelines; longest loop stall"
            f" {max(wall for wall, _ in stalls) * 1000:.1f} ms wall,"
            f" {max(cpu for _, cpu in stalls) * 1000:.1f} ms CPU"
        )
        limit = 3 * SharedPresence.slice_size  # a change is at most three commands
        assert pipelines
        assert max(pipelines) <= limit, (len(pipelines), max(pipelines))
        assert len(pipelines) >= connections * (rooms + 1) // SharedPresence.slice_size
        rewrite = events[events.index("pipeline") : len(events) - events[::-1].index("pipeline")]
        between = "".join("p" if event == "pipeline" else "t" for event in rewrite)
        assert "pp" not in between, between  # the ticker ran between every two slices
        for client in clients:
            client.close()


async def test_a_flushall_is_found_at_the_next_refresh_and_the_members_written_again(
    redis_server: RedisServer,
) -> None:
    """Redis lost its data without a failed command (``FLUSHALL``): the process finds itself no
    longer listed at its next refresh and writes its members again (they stayed unlisted)."""
    port = free_port()
    async with running(backplane(port, redis_server.url), env={"TWS_PRESENCE_TTL": TTL}):
        bob = await connect_when_up(f"ws://127.0.0.1:{port}/ws/room?user=bob")
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 1, timeout=20)
        await bob.request("join", {"room": "lobby"})
        key = PresenceKeys(DEFAULT_CHANNEL).members("/room", "lobby")
        with redis_server.client() as admin:
            await wait_until(lambda: admin.hlen(key) == 1, timeout=10)
            admin.flushall()
            await wait_until(lambda: admin.hlen(key) == 1, timeout=float(TTL) * 4)
            assert admin.hget(PresenceKeys(DEFAULT_CHANNEL).users("/room", "lobby"), '["user","bob"]') == b"1"
        bob.close()
