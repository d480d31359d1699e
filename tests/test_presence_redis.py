"""Presence across server processes through Redis: who is where, joined/left once per user, a
killed process expiring, and presence writes that fail without touching delivery."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.servers import backplane, backplane_script, connect_when_up, free_port, running
from tornado_websockets.broker_redis import DEFAULT_CHANNEL
from tornado_websockets.testing import WebSocketTestClient

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
