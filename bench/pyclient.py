"""The Python client's own cost: CPU time per frame received from a fan-out of small frames.

    python -m bench.pyclient [--rate 10000] [--seconds 5] [--repeat 3]   (or `make bench-pyclient`)

A server process (``WebSocket("/feed")``) emits ``tick`` frames to everyone at ``rate`` frames per
second for ``seconds``, then ``done``. One receiver process at a time is connected, and measures its
own CPU time (user + system, ``getrusage``) from the first tick to ``done``, divided by the frames it
got. Receivers: ``pyclient`` (tornado_websockets.client, one listener), ``pyclient-iter`` (the same,
``async for``), ``websockets`` (the library the client is built on: ``recv()`` and a JSON decode, the
floor for the client), and ``loadclient`` (the benchmark's picows load client, bench/loadclient.py:
frames handled in its frame callback, no task per frame).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("pyclient", "pyclient-iter", "websockets", "loadclient")
#: A chat-sized payload, as in the benchmark's scenarios (about 80 bytes of JSON once framed).
TEXT = "The quick brown fox jumps over the lazy dog"


def cpu() -> float:
    """This process's CPU seconds so far, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# The server --------------------------------------------------------------------------------------


def serve(port: int) -> None:
    """``/ws/feed``: on ``start`` ({rate, seconds}), ``tick`` frames to everyone at that rate; ``done``."""
    from tornado_websockets.tornadowrapper import TornadoWrapper
    from tornado_websockets.websocket import WebSocket

    feed = WebSocket("/feed")

    @feed.on
    async def start(data: dict[str, Any]) -> None:
        rate, seconds = float(data["rate"]), float(data["seconds"])
        loop = asyncio.get_running_loop()
        began, sent = loop.time(), 0
        while (elapsed := loop.time() - began) < seconds:
            due = int(rate * elapsed)
            while sent < due:  # catch up on the schedule: the rate holds on a busy machine too
                sent += 1
                feed.emit("tick", {"n": sent, "text": TEXT})
            await asyncio.sleep(0.005)
        feed.emit("done", {"sent": sent})

    TornadoWrapper.run(port, address="127.0.0.1")


# The receivers -----------------------------------------------------------------------------------


class Tally:
    """Frames received, and the CPU clock from the first one to ``done``."""

    def __init__(self) -> None:
        self.frames = 0
        self.sent = 0
        self.began = 0.0
        self.ended = 0.0
        self.done = asyncio.Event()

    def tick(self) -> None:
        if self.frames == 0:
            self.began = cpu()
        self.frames += 1

    def finish(self, data: dict[str, Any]) -> None:
        self.ended = cpu()
        self.sent = int(data["sent"])
        self.done.set()

    def result(self, kind: str) -> dict[str, Any]:
        return {"kind": kind, "frames": self.frames, "sent": self.sent, "cpu": self.ended - self.began}


async def receive_pyclient(url: str, start: dict[str, Any], iterate: bool) -> Tally:
    from tornado_websockets.client import connect

    tally = Tally()
    async with connect(url) as client:
        if iterate:
            events = aiter(client)
            await client.emit("start", start)
            async for event, data in events:
                if event == "tick":
                    tally.tick()
                elif event == "done":
                    tally.finish(data)
                    break
        else:
            client.on("tick", lambda data: tally.tick())
            client.on("done", tally.finish)
            await client.emit("start", start)
            await tally.done.wait()
    return tally


async def receive_websockets(url: str, start: dict[str, Any]) -> Tally:
    from websockets.asyncio.client import connect

    tally = Tally()
    async with connect(url, ping_interval=None) as ws:
        await ws.send(json.dumps({"event": "start", "data": start}))
        while not tally.done.is_set():
            frame = json.loads(await ws.recv())
            if frame["event"] == "tick":
                tally.tick()
            elif frame["event"] == "done":
                tally.finish(frame["data"])
    return tally


async def receive_loadclient(url: str, start: dict[str, Any]) -> Tally:
    from picows import ws_connect

    from bench.loadclient import Connection
    from bench.protocols import DIALECTS

    tally = Tally()

    class Counter:
        """What bench.loadclient.Connection hands its events to (a run of the load client)."""

        def on_event(self, connection: Any, incoming: Any) -> None:
            if incoming.event == "tick":
                tally.tick()
            elif incoming.event == "done":
                tally.finish(incoming.data)

    counter: Any = Counter()  # stands for the LoadClient, whose on_event is all Connection calls
    transport, listener = await ws_connect(lambda: Connection(counter, DIALECTS["json"], "feed"), url)
    cast(Connection, listener).send("start", start)
    await tally.done.wait()
    transport.disconnect()
    return tally


async def receive(kind: str, url: str, rate: float, seconds: float) -> dict[str, Any]:
    start = {"rate": rate, "seconds": seconds}
    if kind in ("pyclient", "pyclient-iter"):
        tally = await receive_pyclient(url, start, iterate=kind == "pyclient-iter")
    elif kind == "websockets":
        tally = await receive_websockets(url, start)
    else:
        tally = await receive_loadclient(url, start)
    return tally.result(kind)


# The run -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def run(rate: float, seconds: float, repeat: int, kinds: list[str]) -> list[dict[str, Any]]:
    """Every receiver ``repeat`` times against one server process; the raw results."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.pyclient", "serve", str(port)], cwd=ROOT)
    results = []
    try:
        wait_for_port(port)
        url = f"ws://127.0.0.1:{port}/ws/feed"
        for _ in range(repeat):
            for kind in kinds:
                args = [sys.executable, "-m", "bench.pyclient", "receive", kind, url, str(rate), str(seconds)]
                output = subprocess.run(
                    args, cwd=ROOT, capture_output=True, text=True, timeout=seconds * 10 + 30
                )
                if output.returncode != 0:
                    raise RuntimeError(f"{kind} failed:\n{output.stderr}")
                results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    finally:
        server.terminate()
        server.wait(10)
    return results


def report(results: list[dict[str, Any]], rate: float, seconds: float) -> str:
    """A Markdown table: per receiver, the median CPU per frame and what arrived."""
    lines = [
        f"{rate:,.0f} frames per second for {seconds:g} s, {sys.implementation.name} "
        f"{sys.version.split()[0]}; medians of {len(results) // len({r['kind'] for r in results})} runs.",
        "",
        "| receiver | frames received / sent | CPU per frame (µs) | CPU share at this rate |",
        "|---|---|---|---|",
    ]
    for kind in KINDS:
        runs = [result for result in results if result["kind"] == kind]
        if not runs:
            continue
        per_frame = statistics.median(result["cpu"] / max(result["frames"], 1) for result in runs)
        received = statistics.median(result["frames"] for result in runs)
        sent = statistics.median(result["sent"] for result in runs)
        lines.append(
            f"| `{kind}` | {received:,.0f} / {sent:,.0f} | {per_frame * 1e6:.1f} | {per_frame * rate:.0%} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pyclient", description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "serve", "receive"])
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--rate", type=float, default=10000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve(int(args.rest[0]))
    elif args.mode == "receive":
        kind, url, rate, seconds = args.rest
        print(json.dumps(asyncio.run(receive(kind, url, float(rate), float(seconds)))))  # noqa: T201
    else:
        results = run(args.rate, args.seconds, args.repeat, args.kinds.split(","))
        print(report(results, args.rate, args.seconds))  # noqa: T201


if __name__ == "__main__":
    main(sys.argv[1:])
