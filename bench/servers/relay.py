"""The cross-process work of the raw servers, done by hand with ``redis.asyncio`` pub/sub.

A broadcast is written to this process's clients, then PUBLISHed on one channel with this
process's id in front; a subscriber writes what the other processes published to its clients.
Each raw server (Tornado, aiohttp, websockets) hands its own "write to every client" function.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

__all__ = ["relay"]

CHANNEL = "bench"


async def relay(url: str, outbox: asyncio.Queue[bytes], write_all: Callable[[bytes], object]) -> None:
    """Publish what is put in ``outbox``; call ``write_all`` with what the other processes published."""
    import redis.asyncio

    me = f"{os.getpid()}|".encode()
    client = redis.asyncio.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)

    async def publish() -> None:
        while True:
            out = await outbox.get()
            await client.publish(CHANNEL, me + out)

    async def receive() -> None:
        async for message in pubsub.listen():
            data = message["data"]
            if message["type"] == "message" and not data.startswith(me):
                write_all(data.partition(b"|")[2])

    await asyncio.gather(publish(), receive())
