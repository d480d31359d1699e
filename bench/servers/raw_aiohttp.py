"""Peer: a hand-written aiohttp WebSocket server doing the bench's work, nothing else.

``web.WebSocketResponse`` as aiohttp's docs teach it: one handler coroutine per connection
reading with ``async for``, the standard library's json (what a user of aiohttp writes without
an extra package), every frame encoded once and sent with ``send_str``. Same events and frames
as the raw Tornado server. ``--redis URL``: the cross-process work by hand (`bench.servers.relay`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from bench.servers.options import parse_options
from bench.servers.relay import relay

__all__ = ["handle", "main", "make_app"]

CLIENTS: set[web.WebSocketResponse] = set()
WARNING = json.dumps({"event": "warning", "data": {"message": "Invalid frame."}})
#: With --redis: what a broadcast hands to the publishing task.
OUTBOX: asyncio.Queue[bytes] | None = None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def send_all(out: str) -> None:
    """Send one encoded frame to every open connection of this process."""
    for client in tuple(CLIENTS):
        try:
            await client.send_str(out)
        except ConnectionError:
            CLIENTS.discard(client)


async def _answer(ws: web.WebSocketResponse, message: str) -> None:
    try:
        frame = json.loads(message)
        event, data = frame["event"], frame.get("data") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        await ws.send_str(WARNING)
        return
    if event == "echo":
        await ws.send_str(_dumps({"event": "echo", "data": data}))
    elif event == "post":  # emit, then reply: two small frames back to back
        await ws.send_str(_dumps({"event": "receipt", "data": data}))
        await ws.send_str(_dumps({"event": "posted", "data": data}))
    elif event == "broadcast":
        out = _dumps({"event": "tick", "data": data})
        await send_all(out)
        if OUTBOX is not None:
            OUTBOX.put_nowait(out.encode())


async def handle(request: web.Request) -> web.WebSocketResponse:
    """One connection: echo to the sender, broadcast to every open connection."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    CLIENTS.add(ws)
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await _answer(ws, message.data)
    finally:
        CLIENTS.discard(ws)
    return ws


async def _relay_task(app: web.Application, url: str) -> None:
    global OUTBOX
    OUTBOX = asyncio.Queue()
    loop = asyncio.get_running_loop()
    task = loop.create_task(relay(url, OUTBOX, lambda out: loop.create_task(send_all(out.decode()))))
    app["relay"] = task


def make_app(redis_url: str | None = None) -> web.Application:
    """The application serving ``/ws/bench``."""
    app = web.Application()
    app.router.add_get("/ws/bench", handle)
    if redis_url is not None:

        async def start_relay(app: web.Application) -> None:
            await _relay_task(app, redis_url)

        app.on_startup.append(start_relay)
    return app


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM."""
    options = parse_options(__doc__ or "", argv)
    web.run_app(make_app(options.redis), host=options.host, port=options.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
