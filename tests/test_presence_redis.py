"""Presence across server processes through Redis: who is where, and a killed process expiring."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.servers import backplane, backplane_script, connect_when_up, free_port, running
from tornado_websockets.broker_redis import DEFAULT_CHANNEL

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
        a.close()


async def _eventually(
    query: Callable[[], Awaitable[list[str]]], expected: list[str], timeout: float = 10.0
) -> None:
    """Ask until the answer is ``expected``: presence is shared within a tenth of a second, not at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: list[str] = []
    while loop.time() < deadline:
        last = sorted(await query())
        if last == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"presence was {last}, expected {expected}")
