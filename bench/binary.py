"""Binary echo: 16 KiB of bytes in a MessagePack frame against the same bytes base64 in JSON.

``make bench-binary`` (or ``python -m bench.binary --repetitions 5 --results bench/RESULTS.md``):
our server (`bench/servers/ours.py`, the ``async def`` echo that sends the data back) runs in a
process of its own; closed-loop clients (the ``websockets`` package, 1 and 10 at once) send the
same pre-encoded frame again and again and wait for each answer without decoding it, so what is
measured is the server. Figures: round trips per second, and the server's CPU time per round trip
(its ``utime + stime`` from ``/proc``, Linux), the median of the repetitions. Each repetition
starts a fresh server. The report replaces its own section of ``--results`` (or is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import orjson
import websockets
from websockets.typing import Subprotocol

__all__ = ["main"]

SUBPROTOCOL = "tornado-websockets.msgpack"
PAYLOAD = 16 * 1024
SECTION = "## Binary echo (16 KiB)"
CLIENTS = (1, 10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def frames() -> dict[str, tuple[bytes | str, list[Subprotocol] | None]]:
    """The message each format sends, and the subprotocol it asks for."""
    content = os.urandom(PAYLOAD)
    packed = msgspec.msgpack.encode({"event": "echo", "data": {"b": content}})
    text = orjson.dumps({"event": "echo", "data": {"b": base64.b64encode(content).decode()}}).decode()
    return {"MessagePack (bytes)": (packed, [Subprotocol(SUBPROTOCOL)]), "JSON (base64)": (text, None)}


async def client(
    url: str, message: bytes | str, protocols: list[Subprotocol] | None, stop: float, counts: list[int]
) -> None:
    async with websockets.connect(url, subprotocols=protocols, max_size=None) as connection:
        assert (connection.subprotocol or None) == (protocols[0] if protocols else None)
        done = 0
        while time.perf_counter() < stop:
            await connection.send(message)
            answer = await connection.recv()
            assert isinstance(answer, bytes) == isinstance(message, bytes)
            done += 1
        counts.append(done)


async def measure(
    url: str,
    pid: int,
    message: bytes | str,
    protocols: list[Subprotocol] | None,
    clients: int,
    seconds: float,
) -> tuple[float, float]:
    """(round trips per second, server CPU µs per round trip) over ``seconds`` after a warm-up."""
    warm: list[int] = []
    await asyncio.gather(
        *(client(url, message, protocols, time.perf_counter() + 0.5, warm) for _ in range(clients))
    )
    counts: list[int] = []
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    await asyncio.gather(
        *(client(url, message, protocols, started + seconds, counts) for _ in range(clients))
    )
    elapsed = time.perf_counter() - started
    used = cpu_seconds(pid) - cpu
    total = sum(counts)
    return total / elapsed, used / total * 1e6


def start_server(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([sys.executable, "-m", "bench.servers.ours", "--port", str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.05)
    server.kill()
    raise RuntimeError("the bench server did not start")


def run(repetitions: int, seconds: float) -> dict[tuple[str, int], list[tuple[float, float]]]:
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(repetitions):
        for name, (message, protocols) in frames().items():
            for clients in CLIENTS:
                port = free_port()
                server = start_server(port)
                try:
                    url = f"ws://127.0.0.1:{port}/ws/bench"
                    figures = asyncio.run(measure(url, server.pid, message, protocols, clients, seconds))
                finally:
                    server.terminate()
                    server.wait(10)
                results.setdefault((name, clients), []).append(figures)
                rate, cpu = figures
                sys.stdout.write(
                    f"{name}, {clients} client(s): {rate:,.0f} round trips/s, {cpu:.1f} µs CPU\n"
                )
                sys.stdout.flush()
    return results


def report(
    results: dict[tuple[str, int], list[tuple[float, float]]], repetitions: int, seconds: float
) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        SECTION,
        "",
        f"Written by `make bench-binary` (`bench/binary.py`): {repetitions} repetitions, median reported; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; commit {commit}; "
        f"CPython {platform.python_version()}, {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.2f} at the end.",
        "",
        f"The `async def` echo of `bench/servers/ours.py` sends back {PAYLOAD // 1024} KiB of random "
        "bytes: as bytes in a MessagePack binary frame (the client negotiated "
        "`tornado-websockets.msgpack`), or as the same bytes base64 in a JSON text frame. Closed-loop "
        f"`websockets` clients, {seconds:g} s per measurement after a 0.5 s warm-up, a fresh server "
        "each time.",
        "",
        "| format | message (bytes) | clients | round trips/s | server CPU per round trip (µs) |",
        "|---|---|---|---|---|",
    ]
    sizes = {name: len(message) for name, (message, _) in frames().items()}
    for (name, clients), figures in results.items():
        rate = statistics.median(rate for rate, _ in figures)
        cpu = statistics.median(cpu for _, cpu in figures)
        lines.append(f"| {name} | {sizes[name]:,} | {clients} | {rate:,.0f} | {cpu:.1f} |")
    lines += [
        "",
        "Round trips per second move with whatever else the shared machine runs; the CPU time per round trip",
        "is the figure to compare. The MessagePack frame is a quarter smaller on the wire, and neither side",
        "spends time on base64; the server's CPU per round trip is about the same either way at this size",
        "(the difference is within the spread between repetitions).",
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace this scenario's section of ``path`` (up to the next ``## `` heading), or append it."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """Run the scenario and print or record its report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--results", type=Path, default=None, help="the Markdown file whose section to replace"
    )
    args = parser.parse_args(argv)
    section = report(run(args.repetitions, args.seconds), args.repetitions, args.seconds)
    sys.stdout.write(section)
    if args.results is not None:
        write_section(args.results, section)


if __name__ == "__main__":
    main()
