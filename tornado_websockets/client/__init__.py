"""The Python client: ``async with connect("ws://host:port/ws/chat") as client:``.

The same protocol and behaviour as the JavaScript client (reconnection, outbox, final closes,
``unreachable``, recovery, liveness), asyncio first (`Client`, `connect`), with a blocking wrapper for
scripts (`SyncClient`, `connect_sync`). Needs the ``client`` extra (the ``websockets`` package). It
imports nothing of the server side but the sans-I/O core it shares with it (protocol, codec, typed).
"""

from __future__ import annotations

from tornado_websockets.client.connection import RESERVED_EVENTS, SERVER_ERROR_EVENT, Client, connect
from tornado_websockets.client.errors import (
    ClientError,
    ClientUsageError,
    ConnectionEnded,
    ConnectionLost,
    ConnectionUnreachable,
    RequestDropped,
    RequestFailed,
    RequestTimeout,
)
from tornado_websockets.client.options import Liveness, Reconnect
from tornado_websockets.client.sync import SyncClient, connect_sync

__all__ = [
    "RESERVED_EVENTS",
    "SERVER_ERROR_EVENT",
    "Client",
    "ClientError",
    "ClientUsageError",
    "ConnectionEnded",
    "ConnectionLost",
    "ConnectionUnreachable",
    "Liveness",
    "Reconnect",
    "RequestDropped",
    "RequestFailed",
    "RequestTimeout",
    "SyncClient",
    "connect",
    "connect_sync",
]
