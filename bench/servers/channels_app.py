"""Peer: a Django Channels consumer doing the bench's work, as its docs teach it.

An ``AsyncJsonWebsocketConsumer`` in the group ``bench``: ``echo`` answers with ``send_json``,
``broadcast`` goes through the channel layer's ``group_send``. The layer is in memory, or
channels_redis when ``BENCH_REDIS_URL`` is set (the cross-process scenario).
"""

from __future__ import annotations

import os
from typing import Any

import django
from django.conf import settings

if not settings.configured:
    _redis = os.environ.get("BENCH_REDIS_URL")
    _layer: dict[str, Any] = (
        {"BACKEND": "channels.layers.InMemoryChannelLayer"}
        if not _redis
        else {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [_redis]}}
    )
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={"default": _layer},
    )
    django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

__all__ = ["BenchConsumer", "application"]

GROUP = "bench"


class BenchConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Echo to the sender; broadcast as ``tick`` to the group."""

    groups = [GROUP]

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        event = content.get("event") if isinstance(content, dict) else None
        data = content.get("data") or {} if isinstance(content, dict) else {}
        if event == "echo":
            await self.send_json({"event": "echo", "data": data})
        elif event == "broadcast":
            await self.channel_layer.group_send(GROUP, {"type": "tick", "data": data})

    async def tick(self, message: dict[str, Any]) -> None:
        """A ``group_send`` of type ``tick``: one ``send_json`` per member."""
        await self.send_json({"event": "tick", "data": message["data"]})


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/bench", BenchConsumer.as_asgi())])})
