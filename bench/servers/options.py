"""The command line every bench server takes: where to listen, and the Redis backplane if any."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

__all__ = ["ServerOptions", "parse_options"]


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """``--port``, ``--host``, ``--redis URL`` (cross-process run); ``--sync``, ``--typed``,
    ``--tornado-reader``, ``--tornado-stream``, ``--loop``: ours only."""

    port: int
    host: str
    redis: str | None
    sync: bool
    typed: bool
    tornado_reader: bool = False
    on_loop: bool = False
    loop: str = "asyncio"
    tornado_stream: bool = False


def parse_options(description: str, argv: list[str] | None = None) -> ServerOptions:
    """Read the server's options; logging goes to stderr at WARNING so it costs nothing per frame."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--redis", default=None, help="redis://127.0.0.1:PORT/0 for the cross-process run")
    parser.add_argument("--sync", action="store_true", help="plain def event functions (ours only)")
    parser.add_argument("--typed", action="store_true", help="echo validates its data (ours only)")
    parser.add_argument(
        "--tornado-reader", action="store_true", help="Tornado's frame reader, not ours (ours only)"
    )
    parser.add_argument(
        "--on-loop", action="store_true", help="plain def functions bound with blocking=False (ours only)"
    )
    parser.add_argument(
        "--tornado-stream",
        action="store_true",
        help="leave connections on Tornado's IOStream after the upgrade (ours only)",
    )
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop (ours only)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    return ServerOptions(
        args.port,
        args.host,
        args.redis,
        args.sync,
        args.typed,
        args.tornado_reader,
        args.on_loop,
        args.loop,
        args.tornado_stream,
    )
