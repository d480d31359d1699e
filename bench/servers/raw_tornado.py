"""The ceiling for us: a bare ``tornado.websocket.WebSocketHandler`` doing the bench's work by hand.

Same frames, same codec as ours (orjson when installed), nothing else: no event registry, no
metrics, no limits. The ratio ours / raw is what the library costs on top of Tornado.

With ``--redis URL``, the same work across processes done by hand with ``redis.asyncio`` pub/sub
(`bench.servers.relay`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import Any, ClassVar

import tornado.web
import tornado.websocket

from bench.servers.options import parse_options
from bench.servers.relay import relay

try:
    import orjson
except ImportError:
    orjson = None  # type: ignore[assignment]

__all__ = ["BenchHandler", "main", "make_app"]

logger = logging.getLogger(__name__)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value) if orjson is not None else json.dumps(value, separators=(",", ":")).encode()


_loads = orjson.loads if orjson is not None else json.loads
_WARNING = _dumps({"event": "warning", "data": {"message": "Invalid frame."}})


class BenchHandler(tornado.websocket.WebSocketHandler):
    """Echo to the sender, broadcast to every open connection; the frame is encoded once."""

    clients: ClassVar[set[BenchHandler]] = set()
    #: With --redis: hands an encoded broadcast to the publishing task.
    outbox: ClassVar[asyncio.Queue[bytes] | None] = None

    def open(self, *args: str, **kwargs: str) -> None:
        self.clients.add(self)

    def on_close(self) -> None:
        self.clients.discard(self)

    def on_message(self, message: str | bytes) -> None:
        try:
            frame = _loads(message)
            event, data = frame["event"], frame.get("data") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            self.write_message(_WARNING)
            return
        if event == "echo":
            self.write_message(_dumps({"event": "echo", "data": data}))
        elif event == "post":  # emit, then reply: two small frames back to back
            self.write_message(_dumps({"event": "receipt", "data": data}))
            self.write_message(_dumps({"event": "posted", "data": data}))
        elif event == "broadcast":
            out = _dumps({"event": "tick", "data": data})
            write_all(out)
            if self.outbox is not None:
                self.outbox.put_nowait(out)


def write_all(out: bytes) -> None:
    """Write one encoded frame to every open connection of this process."""
    for client in tuple(BenchHandler.clients):
        try:
            client.write_message(out)
        except tornado.websocket.WebSocketClosedError:
            BenchHandler.clients.discard(client)


async def _relay(url: str) -> None:
    """Publish this process's broadcasts; write the other processes' ones to this process's clients."""
    outbox: asyncio.Queue[bytes] = asyncio.Queue()
    BenchHandler.outbox = outbox
    await relay(url, outbox, write_all)


def make_app() -> tornado.web.Application:
    """The application serving ``/ws/bench``."""
    return tornado.web.Application([("/ws/bench", BenchHandler)])


async def _serve(host: str, port: int, redis_url: str | None = None) -> None:
    relay = None if redis_url is None else asyncio.ensure_future(_relay(redis_url))
    make_app().listen(port, host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    if relay is not None:
        relay.cancel()


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM."""
    options = parse_options(__doc__ or "", argv)
    asyncio.run(_serve(options.host, options.port, options.redis))


if __name__ == "__main__":
    main()
