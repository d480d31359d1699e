"""A rolling deploy loses nothing (issue 28 §7).

Three server processes behind one real ``redis-server``; a room gets about 100 frames a second
from an `~tornado_websockets.emitter.Emitter`; the processes are restarted one at a time with
SIGTERM, each closing its clients with 1001 and replaced by a new process on the same port. The
clients do what the JavaScript client does: remember the epoch, the last ``seq`` and the newest
token of each stream, forget a stream on ``left``, and reconnect (to any process) with them. Each
must end with every frame of the room from its first one, exactly once, in order, without
``resync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
import urllib.parse
from typing import Any

import tornado.httpclient

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.servers import backplane, connect_when_up, free_port, running
from tornado_websockets.broker_redis import DEFAULT_CHANNEL
from tornado_websockets.emitter import Emitter
from tornado_websockets.testing import WebSocketTestClient

PROCESSES = 3
CLIENTS = 6
RATE = 100  # frames a second


class Reader:
    """One client of the room, reconnecting with its positions as the JavaScript client does."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.epoch: str | None = None
        self.positions: dict[str, int] = {}
        self.tokens: dict[str, str] = {}
        self.said: list[int] = []
        self.resyncs: list[str] = []
        self.gaps: list[tuple[str, int, int]] = []
        self.closes: list[int | None] = []
        self.joined = asyncio.Event()

    def see(self, frame: Any) -> None:
        data = frame.data
        if frame.event == "stream" and data.get("left"):
            self.positions.pop(data["stream"], None)
            self.tokens.pop(data["stream"], None)
        elif frame.event == "stream":
            if data["epoch"] != self.epoch:  # positions of another epoch mean nothing
                self.epoch = data["epoch"]
                self.positions.clear()
                self.tokens.clear()
            self.positions[data["stream"]] = data["seq"]
            self.tokens[data["stream"]] = data["token"]  # the newest: an older one is spent
        elif frame.event == "resync":
            self.resyncs.append(data["stream"])
        if frame.stream is not None:
            last = self.positions.get(frame.stream)
            if last is not None and frame.seq != last + 1:
                self.gaps.append((frame.stream, last, frame.seq))
            self.positions[frame.stream] = frame.seq
        if frame.event == "said":
            self.said.append(data["n"])

    def query(self) -> str:
        if self.epoch is None:
            return ""
        request = {"epoch": self.epoch, "streams": self.positions, "tokens": self.tokens}
        return "?recover=" + urllib.parse.quote(json.dumps(request))

    async def run(self) -> None:
        """Connect, join the room, read; on a close, reconnect to any process, until cancelled."""
        while True:
            port = random.choice(self.ports)
            try:
                client = await WebSocketTestClient.connect(
                    f"ws://127.0.0.1:{port}/ws/news{self.query()}", timeout=2
                )
            except (OSError, tornado.httpclient.HTTPClientError, TimeoutError):
                await asyncio.sleep(0.02)  # that process is restarting: another one
                continue
            try:
                await client.request("join", {"room": "lobby"})
                self.joined.set()
                while True:
                    self.see(await client.receive(timeout=30))
            except (ConnectionError, TimeoutError):
                for frame in client.buffered():  # what came before the close is still the client's
                    self.see(frame)
                self.closes.append(client.close_code)
            finally:
                client.close()


def emit_until(url: str, stop: threading.Event, sent: list[int]) -> None:
    """Emit ``said`` to the room about `RATE` times a second until ``stop``; ``sent``: the n of each."""
    with Emitter(url) as emitter:
        start = time.monotonic()
        n = 0
        while not stop.is_set():
            emitter.emit("/news", "said", {"n": n}, room="lobby")
            sent.append(n)
            n += 1
            time.sleep(max(0.0, start + n / RATE - time.monotonic()))


async def test_a_rolling_deploy_loses_nothing(redis_server: RedisServer) -> None:
    ports = [free_port() for _ in range(PROCESSES)]
    slots = [contextlib.AsyncExitStack() for _ in ports]

    async def start(slot: int) -> None:
        await slots[slot].enter_async_context(running(backplane(ports[slot], redis_server.url)))

    async def all_up() -> None:
        for port in ports:
            (await connect_when_up(f"ws://127.0.0.1:{port}/ws/news")).close()
        await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == PROCESSES, timeout=30)

    began = time.monotonic()
    for slot in range(PROCESSES):
        await start(slot)
    stop, sent = threading.Event(), []
    emitting = asyncio.ensure_future(asyncio.to_thread(emit_until, redis_server.url, stop, sent))
    readers = [Reader(ports) for _ in range(CLIENTS)]
    tasks = []
    try:
        await all_up()
        tasks = [asyncio.ensure_future(reader.run()) for reader in readers]
        await wait_until(lambda: all(len(reader.said) >= 20 for reader in readers), timeout=20)

        for slot in range(PROCESSES):  # the deploy: one process at a time, SIGTERM then a new one
            await slots[slot].aclose()
            slots[slot] = contextlib.AsyncExitStack()
            await start(slot)
            await all_up()
            await asyncio.sleep(1.0)  # the new process serves a while before the next goes

        stop.set()
        await emitting
        last = sent[-1]
        await wait_until(lambda: all(reader.said[-1:] == [last] for reader in readers), timeout=20)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, emitting, return_exceptions=True)
        for slot in slots:
            await slot.aclose()

    print(  # noqa: T201 - the figures of the deploy, with -s
        f"rolling deploy: {len(sent)} frames at ~{RATE}/s over {time.monotonic() - began:.1f} s, "
        f"{PROCESSES} restarts; reconnections per client: {[len(r.closes) for r in readers]}"
    )
    for reader in readers:
        assert reader.resyncs == []
        assert reader.gaps == []
        first = reader.said[0]
        assert reader.said == list(range(first, last + 1))  # every frame once, in order
        assert reader.closes, "every client was on a process that restarted"
        assert set(reader.closes) == {1001}  # each process went away, closing its clients so
