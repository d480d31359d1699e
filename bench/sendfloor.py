"""The kernel's floor under a fan-out: CPU time of one bare ``socket.send`` per member.

    python -m bench.sendfloor [--clients 5000] [--rounds 20] [--repeat 5]   (or `make bench-floor`)

Any server that writes a broadcast to each member's socket makes at least one ``send`` per member.
This measures that alone, with no server around it: a receiver process opens ``clients`` loopback
TCP connections and reads whatever comes (as the load client does); this process accepts them
(non-blocking, TCP_NODELAY, as the servers measured set them) and, each round, sends one
fan-out-sized WebSocket frame to every connection, measuring its own CPU time (user + system,
``getrusage``) around the sends only. The figure is CPU per send: what the fan-out's "server CPU
per delivery" cannot go below on this machine, whatever the server is written in.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.processes import raise_file_limit
from bench.pyclient import cpu

ROOT = Path(__file__).resolve().parent.parent
#: A ``tick`` frame as the fan-out scenario sends it (bench/loadclient.py: a sequence number and
#: a chat-sized text).
PAYLOAD = b'{"event":"tick","data":{"seq":123,"text":"The quick brown fox jumps over the lazy dog"}}'
FRAME = bytes((0x81, len(PAYLOAD))) + PAYLOAD


def receive(port: int, clients: int) -> None:
    """The receiver: ``clients`` connections to ``port``, read until the sender closes them."""
    raise_file_limit()
    selector = selectors.EpollSelector()
    for _ in range(clients):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.setblocking(False)
        selector.register(connection, selectors.EVENT_READ)
    open_ = clients
    while open_:
        for key, _ in selector.select(30):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                selector.unregister(sock)
                sock.close()
                open_ -= 1


def measure(clients: int, rounds: int) -> float:
    """Median over ``rounds`` of the CPU microseconds per send to ``clients`` connections."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    command = [sys.executable, "-m", "bench.sendfloor", "--receive", str(port), "--clients", str(clients)]
    receiver = subprocess.Popen(command, cwd=ROOT)
    connections = []
    try:
        for _ in range(clients):
            connection, _ = listener.accept()
            connection.setblocking(False)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connections.append(connection)
        time.sleep(0.5)
        per_send = []
        for _ in range(rounds):
            began = cpu()
            for connection in connections:
                connection.send(FRAME)
            per_send.append((cpu() - began) / clients * 1e6)
            time.sleep(0.05)  # the receiver reads them all, as clients of a fan-out round do
        return statistics.median(per_send)
    finally:
        for connection in connections:
            connection.close()
        listener.close()
        receiver.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sendfloor", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--receive", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    raise_file_limit()
    if args.receive:
        receive(args.receive, args.clients)
        return 0
    figures = [measure(args.clients, args.rounds) for _ in range(args.repeat)]
    print(  # noqa: T201 - the report
        f"CPython {sys.version.split()[0]}: one send of a {len(FRAME)}-byte frame to each of "
        f"{args.clients:,} loopback connections costs {statistics.median(figures):.2f} µs of CPU "
        f"(median of {args.repeat} runs: {', '.join(f'{f:.2f}' for f in figures)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
