"""Processes for the backplane tests, run as ``python -m tests.backplane_app MODE ...``.

- ``serve PORT REDIS_URL [PROCESSES]``: a server with ``/chat`` (rooms, replies telling which
  process a client is on and how the backplane is doing) and ``/news`` (the same with recovery,
  keeping ``TWS_RECOVER_SIZE`` frames, and ``leave``), through ``TornadoWrapper.run``.
- ``/room?user=name``: rooms announcing ``joined`` and ``left``, for the user the URL names.
- ``emit REDIS_URL ROOM TEXT``: ``ws.emit`` from a process that runs no server (`publish_sync`).
- ``emitter REDIS_URL ROOM TEXT [PATH]``: the same through an `Emitter` (to ``/chat`` unless
  ``PATH`` says otherwise); writes how many processes got it.
- ``presence REDIS_URL [ROOM]``: ``presence_sync`` from a process that runs no server; writes the
  connection ids.
- ``stats REDIS_URL``: `tornado_websockets.metrics.everywhere` from a process that runs no
  server; writes it as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from tornado_websockets import delivery, metrics
from tornado_websockets.broker_redis import RedisBroker
from tornado_websockets.broker_redis_cluster import RedisClusterBroker, is_cluster_url
from tornado_websockets.emitter import Emitter
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

#: Fast reconnection, so that the outage test does not wait for the default backoff; a short
#: presence TTL and keepalive when a test asks for them.
RETRY = {
    "retry_base": float(os.environ.get("TWS_RETRY_BASE", "0.05")),
    "retry_cap": max(0.5, float(os.environ.get("TWS_RETRY_BASE", "0.05"))),
    "presence_ttl": float(os.environ.get("TWS_PRESENCE_TTL", "15")),
    "keepalive": float(os.environ.get("TWS_KEEPALIVE", "15")),
}


async def join(socket: WebSocketHandler, data: dict[str, Any]) -> list[str]:
    """Enter ``data["room"]``; replies with the rooms the connection is in."""
    socket.join(data["room"])
    return sorted(socket.rooms)


async def leave(socket: WebSocketHandler, data: dict[str, Any]) -> list[str]:
    """Leave ``data["room"]``; replies with the rooms the connection is in."""
    socket.leave(data["room"])
    return sorted(socket.rooms)


def chat_app() -> WebSocket:
    """``/chat``: join rooms, say things to a room or to everyone, ask where one is."""
    chat = WebSocket("/chat")

    chat.add_event("join", join)

    @chat.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        skip = socket if data.get("skip_me") else None
        chat.emit("said", {"text": data["text"], "pid": os.getpid()}, room=data.get("room"), skip=skip)

    @chat.on
    async def whoami(socket: WebSocketHandler) -> dict[str, Any]:
        return {"pid": os.getpid(), "id": socket.id}

    @chat.on
    async def who(socket: WebSocketHandler, data: dict[str, Any]) -> dict[str, Any]:
        present = await chat.presence(data.get("room"))
        return {"connections": sorted(m.connection for m in present.members), "users": len(present.users)}

    chat.add_event("backplane", backplane)
    return chat


async def backplane(socket: WebSocketHandler) -> dict[str, Any]:
    """How the backplane is doing: its state, reconnections, and the frames it lost by reason."""
    broker = TornadoWrapper.broker
    drops = delivery.dropped()
    lost = sum(n for (reason, _), n in drops.items() if reason == delivery.BACKPLANE_UNREACHABLE)
    missed = sum(n for (reason, _), n in drops.items() if reason == delivery.BACKPLANE_MISSED)
    return {
        "state": getattr(broker, "state", None),
        "dropped": lost,
        "missed": missed,
        "id": broker.id,
        "reconnects": getattr(broker, "reconnects", 0),
    }


def news_app() -> WebSocket:
    """``/news``: ``/chat``'s ``join`` and ``say`` on a path whose clients recover what they miss."""
    news = WebSocket("/news", recover=60, recover_size=int(os.environ.get("TWS_RECOVER_SIZE", "1000")))

    news.add_event("join", join)
    news.add_event("leave", leave)

    @news.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        news.emit("said", {"n": data["n"], "pid": os.getpid()}, room=data.get("room"))

    news.add_event("backplane", backplane)

    return news


def room_app() -> WebSocket:
    """``/room?user=name``: rooms with ``joined`` / ``left`` events, for a user named in the URL."""
    room = WebSocket("/room", presence_events=True)

    @room.guard
    async def named(socket: WebSocketHandler) -> bool:
        socket.user_id = socket.get_query_argument("user", None)
        return True

    room.add_event("join", join)

    @room.on
    async def leave(socket: WebSocketHandler, data: dict[str, Any]) -> list[str]:
        socket.leave(data["room"])
        return sorted(socket.rooms)

    @room.on
    async def who(socket: WebSocketHandler, data: dict[str, Any]) -> dict[str, Any]:
        present = await room.presence(data.get("room"))
        return {"users": sorted(str(user) for user in present.users), "connections": present.connections}

    room.add_event("backplane", backplane)
    return room


def main(argv: list[str]) -> None:
    """Run one mode (see the module's docstring)."""
    logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(levelname)s %(message)s")
    mode, *args = argv
    if mode == "serve":
        chat_app()
        news_app()
        room_app()
        processes = int(args[2]) if len(args) > 2 else 1
        kind = RedisClusterBroker if is_cluster_url(args[1]) else RedisBroker
        broker = kind(args[1], **RETRY)
        TornadoWrapper.run(int(args[0]), address="127.0.0.1", processes=processes, broker=broker)
    elif mode == "emit":
        chat = chat_app()
        TornadoWrapper.use_broker(args[0])
        chat.emit("said", {"text": args[2], "pid": os.getpid()}, room=args[1])
    elif mode == "presence":
        chat = chat_app()
        TornadoWrapper.use_broker(args[0])
        present = chat.presence_sync(args[1] if len(args) > 1 else None)
        sys.stdout.write(" ".join(sorted(m.connection for m in present.members)) + "\n")
    elif mode == "emitter":
        with Emitter(args[0]) as emitter:
            path = args[3] if len(args) > 3 else "/chat"
            data = {"text": args[2], "n": args[2], "pid": os.getpid()}
            receivers = emitter.emit(path, "said", data, room=args[1])
        sys.stdout.write(f"{receivers}\n")
    elif mode == "stats":
        TornadoWrapper.use_broker(RedisBroker(args[0]))
        sys.stdout.write(json.dumps(metrics.everywhere()) + "\n")
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
