"""Peer: python-socketio's ``AsyncServer`` in its aiohttp mode (no ASGI server in between).

aiohttp is the fastest of its asyncio modes that needs no extra server process. ``--redis URL``
uses its ``AsyncRedisManager`` so that emits reach the clients of other processes.
"""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp import web

from bench.servers.options import parse_options

__all__ = ["build", "main"]


def build(redis_url: str | None) -> socketio.AsyncServer:
    """The server with its ``echo`` and ``broadcast`` handlers."""
    manager = None if redis_url is None else socketio.AsyncRedisManager(redis_url)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)

    async def echo(sid: str, data: Any) -> None:
        await sio.emit("echo", data, to=sid)

    async def broadcast(sid: str, data: Any) -> None:
        await sio.emit("tick", data)

    # The call form of its decorator, as its docs show both.
    sio.on("echo", echo)
    sio.on("broadcast", broadcast)
    return sio


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM."""
    options = parse_options(__doc__ or "", argv)
    app = web.Application()
    build(options.redis).attach(app)
    web.run_app(app, host=options.host, port=options.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
