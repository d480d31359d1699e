"""The servers under test, one module each, every one run in its own process by the harness.

Each answers ``echo`` (to the sender) and ``broadcast`` (``tick`` to every client) on one path.
`SERVERS` says how to start them and which packages each needs. `UVLOOP` are the variants on the
uvloop event loop, measured when the harness is asked to (``run --uvloop``).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass

__all__ = ["SERVERS", "UVLOOP", "ServerSpec"]


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One server under test: its name in the results, how to start it, what it needs."""

    name: str
    label: str
    module: str
    dialect: str
    requires: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    #: Import that must exist for the cross-process (Redis) scenario; None: not measured there.
    redis_requires: str | None = None
    #: Measured in the echo scenario only (a variant whose difference lies in the echo path).
    echo_only: bool = False

    def command(self, port: int, redis_url: str | None = None) -> list[str]:
        """The command line starting this server on ``127.0.0.1:port``."""
        command = [sys.executable, "-m", self.module, "--port", str(port), *self.extra_args]
        if redis_url is not None:
            command += ["--redis", redis_url]
        return command

    def missing(self, redis: bool = False) -> list[str]:
        """The required modules that this Python cannot import (a peer not installed here)."""
        wanted = [*self.requires, *([self.redis_requires] if redis and self.redis_requires else [])]
        return [name for name in wanted if not _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(
            "raw", "raw Tornado", "bench.servers.raw_tornado", "json", ("tornado",), redis_requires="redis"
        ),
        ServerSpec(
            "ours",
            "ours (async def)",
            "bench.servers.ours",
            "json",
            ("tornado_websockets",),
            redis_requires="tornado_websockets.broker_redis",
        ),
        ServerSpec(
            "ours-uvloop",
            "ours (async def, uvloop)",
            "bench.servers.ours",
            "json",
            ("tornado_websockets", "uvloop"),
            ("--loop", "uvloop"),
            redis_requires="tornado_websockets.broker_redis",
        ),
        ServerSpec(
            "ours-tornado-stream",
            "ours (async def, Tornado's stream)",
            "bench.servers.ours",
            "json",
            ("tornado_websockets",),
            ("--tornado-stream",),
            redis_requires="tornado_websockets.broker_redis",
        ),
        ServerSpec(
            "ours-sync",
            "ours (plain def)",
            "bench.servers.ours",
            "json",
            ("tornado_websockets",),
            ("--sync",),
        ),
        ServerSpec(
            "ours-onloop",
            "ours (plain def, blocking=False)",
            "bench.servers.ours",
            "json",
            ("tornado_websockets",),
            ("--on-loop",),
            echo_only=True,
        ),
        ServerSpec(
            "ours-typed",
            "ours (typed echo)",
            "bench.servers.ours",
            "json",
            ("tornado_websockets", "msgspec"),
            ("--typed",),
            echo_only=True,
        ),
        ServerSpec(
            "ours-tornado-reader",
            "ours (Tornado's frame reader)",
            "bench.servers.ours",
            "json",
            ("tornado_websockets",),
            ("--tornado-reader",),
            echo_only=True,
        ),
        ServerSpec(
            "aiohttp",
            "raw aiohttp",
            "bench.servers.raw_aiohttp",
            "json",
            ("aiohttp",),
            redis_requires="redis",
        ),
        ServerSpec(
            "websockets",
            "raw websockets",
            "bench.servers.raw_websockets",
            "json",
            ("websockets",),
            redis_requires="redis",
        ),
        ServerSpec(
            "socketio",
            "python-socketio (aiohttp)",
            "bench.servers.socketio_aiohttp",
            "socketio",
            ("socketio", "aiohttp"),
            redis_requires="redis",
        ),
        ServerSpec(
            "channels",
            "Channels (daphne, in-memory layer)",
            "bench.servers.channels_daphne",
            "json",
            ("channels", "daphne", "django"),
            redis_requires="channels_redis",
        ),
    )
}

#: The variants on the uvloop loop: outside the plans' default server lists, added by ``run --uvloop``.
UVLOOP = ("ours-uvloop",)
