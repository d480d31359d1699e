"""A soak run: many connect / join / emit / close cycles, a third of them abrupt.

Afterwards nothing is left behind: no connection, room, per-user state, or file descriptor.
``make soak`` runs the long version (TWS_SOAK_CYCLES).
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from typing import Any

from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import CONNECT_HOOK_SETTING, WebSocketHandler

CYCLES = int(os.environ.get("TWS_SOAK_CYCLES", "1500"))
CONCURRENCY = 25


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def identify(socket: WebSocketHandler) -> None:
    socket.user_id = socket.request.headers.get("X-User")


async def test_connect_emit_close_cycles_leave_nothing_behind(reader_settings: dict[str, Any]) -> None:
    ws = WebSocket("/soak/<room>")
    received = 0

    @ws.on
    async def open(socket: WebSocketHandler) -> None:
        socket.join(socket.path_params["room"])
        socket.user_state.seen = True

    @ws.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> int:
        ws.to(socket.path_params["room"]).emit("said", data, skip=socket)
        return len(ws.rooms.members(socket.path_params["room"]))

    async with serve(tornado_settings={CONNECT_HOOK_SETTING: identify, **reader_settings}) as server:
        baseline = open_fds()

        async def cycle(n: int) -> None:
            nonlocal received
            client = await server.connect(f"/soak/room{n % 7}", headers={"X-User": f"user{n % 11}"})
            assert await client.request("say", {"n": n}) >= 1
            received += len(client.buffered())
            if n % 3 == 0:
                client.connection.stream.close()  # abrupt: no closing handshake
            else:
                client.close()

        async def worker(first: int) -> None:
            for n in range(first, CYCLES, CONCURRENCY):
                await cycle(n)

        started = time.monotonic()
        await asyncio.gather(*(worker(first) for first in range(CONCURRENCY)))
        elapsed = time.monotonic() - started

        deadline = time.monotonic() + 10
        while ws.handlers or len(ws.rooms) or ws.users or open_fds() > baseline:
            assert time.monotonic() < deadline, (ws, ws.rooms, ws.users, open_fds(), baseline)
            await asyncio.sleep(0.05)
        after = open_fds()
        assert after <= baseline  # fewer: sockets of earlier tests finished closing meanwhile
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(  # noqa: T201
            f"{CYCLES} cycles in {elapsed:.1f}s, {received} room frames, "
            f"open fds {baseline} before and {after} after, peak RSS {peak} MiB"
        )
