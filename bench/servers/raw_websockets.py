"""Peer: a hand-written server on the ``websockets`` package doing the bench's work, nothing else.

Its asyncio implementation as its docs teach it: ``serve()`` with one handler coroutine per
connection reading with ``async for``, the standard library's json, ``send`` for the echo and
``websockets.broadcast`` (one encoding, written to every connection without awaiting) for the
fan-out. Same events and frames as the raw Tornado server; compression off, as no load client
asks for it. ``--redis URL``: the cross-process work by hand (`bench.servers.relay`).
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.servers.options import parse_options
from bench.servers.relay import relay

__all__ = ["handle", "main"]

CLIENTS: set[ServerConnection] = set()
WARNING = json.dumps({"event": "warning", "data": {"message": "Invalid frame."}})
#: With --redis: what a broadcast hands to the publishing task.
OUTBOX: asyncio.Queue[bytes] | None = None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def _answer(ws: ServerConnection, message: str) -> None:
    try:
        frame = json.loads(message)
        event, data = frame["event"], frame.get("data") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        await ws.send(WARNING)
        return
    if event == "echo":
        await ws.send(_dumps({"event": "echo", "data": data}))
    elif event == "post":  # emit, then reply: two small frames back to back
        await ws.send(_dumps({"event": "receipt", "data": data}))
        await ws.send(_dumps({"event": "posted", "data": data}))
    elif event == "broadcast":
        out = _dumps({"event": "tick", "data": data})
        broadcast(CLIENTS, out)
        if OUTBOX is not None:
            OUTBOX.put_nowait(out.encode())


async def handle(ws: ServerConnection) -> None:
    """One connection: echo to the sender, broadcast to every open connection."""
    CLIENTS.add(ws)
    try:
        async for message in ws:
            if isinstance(message, str):
                await _answer(ws, message)
    finally:
        CLIENTS.discard(ws)


async def _serve(host: str, port: int, redis_url: str | None) -> None:
    global OUTBOX
    relaying = None
    if redis_url is not None:
        OUTBOX = asyncio.Queue()
        relaying = asyncio.ensure_future(
            relay(redis_url, OUTBOX, lambda out: broadcast(CLIENTS, out.decode()))
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with serve(handle, host, port, compression=None):
        await stop.wait()
    if relaying is not None:
        relaying.cancel()


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM."""
    options = parse_options(__doc__ or "", argv)
    asyncio.run(_serve(options.host, options.port, options.redis))


if __name__ == "__main__":
    main()
