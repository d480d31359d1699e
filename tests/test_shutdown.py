"""Shutdown and the end of a loop: what was accepted is delivered, what is lost is counted.

Issue 22 items 6 and 7: event functions counted per loop (a plain ``def`` outliving its loop leaked
``in_flight``), a shutdown that waits for each connection's buffered writes and closing handshake,
calls handed to a loop in its last iteration, and a second Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from tests.polling import wait_until
from tests.rawclient import RawClient
from tests.wsframes import client_frame
from tornado_websockets import delivery, loops
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

TIMEOUT = 10


def start_script(path: Path, source: str, *args: object) -> subprocess.Popen[bytes]:
    """Run ``source`` as a script with ``args``, as a user runs theirs; its output on stdout."""
    path.write_text(source)
    return subprocess.Popen(
        [sys.executable, str(path), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )


def wait_for_line(process: subprocess.Popen[bytes], wanted: bytes) -> None:
    """Read the script's output up to the line that contains ``wanted``."""
    assert process.stdout is not None
    for line in process.stdout:
        if wanted in line:
            return
    raise AssertionError(f"the script ended without printing {wanted!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def connect_raw_with_retry(port: int, path: str, receive_buffer: int | None = None) -> RawClient:
    for _ in range(200):
        try:
            return await RawClient.connect(port, path, receive_buffer=receive_buffer)
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"port {port} never accepted a connection")


def blocked_def_path(release: threading.Event, finished: list[str]) -> WebSocket:
    ws = WebSocket("/outlive")

    @ws.on
    def block(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        release.wait(30)
        finished.append("block")

    return ws


def run_a_server_whose_loop_ends_while_a_def_runs() -> None:
    """In a thread of its own: serve, start the blocking ``def``, then end the loop under it."""

    async def first() -> None:
        async with serve() as server, server.connect("/outlive") as client:
            await client.emit("block")
            await wait_until(lambda: TornadoWrapper.in_flight == 1)
            await TornadoWrapper.shutdown(grace=0.1)

    thread = threading.Thread(target=asyncio.run, args=(first(),))
    thread.start()
    thread.join(TIMEOUT)


async def test_a_def_that_outlives_its_loop_is_counted_until_it_ends_then_no_more() -> None:
    release, finished = threading.Event(), []
    blocked_def_path(release, finished)
    try:
        await asyncio.to_thread(run_a_server_whose_loop_ends_while_a_def_runs)
        assert TornadoWrapper.in_flight == 1  # still running, in its worker
        # A later server's shutdown, on another loop, does not wait for it: the grace is long,
        # and the function is still blocked when the shutdown is done.
        async with serve():
            shutdown = asyncio.ensure_future(TornadoWrapper.shutdown(grace=60))
            await asyncio.wait({shutdown}, timeout=TIMEOUT)
            assert shutdown.done()  # it waited 60 s for the other loop's function before
            assert finished == []
    finally:
        release.set()
    await wait_until(lambda: finished == ["block"])
    await wait_until(lambda: TornadoWrapper.in_flight == 0)  # leaked before: stayed 1 for good


SLOW_LINK_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from tornado_websockets.tornadowrapper import TornadoWrapper
    from tornado_websockets.websocket import WebSocket

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    ws = WebSocket("/flood")

    @ws.on
    async def flood(socket):
        for n in range(100):
            socket.emit("row", {"n": n, "fill": "x" * 32768})
        print("accepted", flush=True)

    TornadoWrapper.run(int(sys.argv[1]), address="127.0.0.1")
    print("exited cleanly", flush=True)
    """
)


async def test_a_client_on_a_slow_link_gets_every_accepted_frame_then_1001(tmp_path: Path) -> None:
    """Issue 22 item 7: shutdown returned once close() was called; the process exited with frames
    it had accepted still in its buffers, and the client got 62 of 100 and an EOF, not 1001."""
    port = free_port()
    process = start_script(tmp_path / "slow_link.py", SLOW_LINK_SCRIPT, port)
    try:
        client = await connect_raw_with_retry(port, "/flood", receive_buffer=4096)
        client.send_text(b'{"event":"flood"}')
        await asyncio.to_thread(wait_for_line, process, b"accepted")
        process.send_signal(signal.SIGTERM)
        rows, close_code = 0, None
        while True:
            try:
                opcode, payload = await asyncio.wait_for(client.read_frame(), TIMEOUT)
            except asyncio.IncompleteReadError:
                break  # the end of the stream, without a close frame
            if opcode == 0x8:
                close_code = struct.unpack("!H", payload[:2])[0]
                client.writer.write(client_frame(0x8, payload[:2]))
                break
            rows += json.loads(payload)["event"] == "row"
            await asyncio.sleep(0.002)  # a slow reader
        print(f"\nrows received before the end: {rows} of 100; close code {close_code}")  # noqa: T201
        output, _ = await asyncio.to_thread(process.communicate, timeout=TIMEOUT + 10)
    finally:
        process.kill()
    assert (rows, close_code) == (100, 1001)
    assert b"exited cleanly" in output


async def test_a_join_racing_the_loops_end_raises_websocketclosederror_at_once() -> None:
    """Issue 22 item 7: a ``join`` handed over in the loop's last iteration waited out its 10 s
    timeout (TimeoutError) instead of raising WebSocketClosedError; the frame queued with it was
    lost without a count."""
    ws = WebSocket("/racing")
    entered, go, outcome = threading.Event(), threading.Event(), []
    server_loop: list[asyncio.AbstractEventLoop] = []

    @ws.on
    def race(socket: WebSocketHandler) -> None:
        entered.set()
        go.wait(TIMEOUT)
        socket.emit("lost")  # queued in the loop's last iteration, with the join
        started = time.monotonic()
        try:
            socket.join("late")
        except Exception as error:  # what the user's code sees
            outcome.append((type(error).__name__, time.monotonic() - started))

    listening = threading.Event()

    def run_server() -> None:  # a server started as a script starts one, in a thread of its own
        asyncio.set_event_loop(asyncio.new_event_loop())
        TornadoWrapper.start_app()
        TornadoWrapper.listen(0, "127.0.0.1")
        server_loop.append(asyncio.get_event_loop())
        listening.set()
        TornadoWrapper.loop()

    thread = threading.Thread(target=run_server, daemon=True)
    thread.start()
    assert await asyncio.to_thread(listening.wait, TIMEOUT)
    loop = server_loop[0]
    client = await connect_raw_with_retry(TornadoWrapper.tornado_port or 0, "/racing")
    client.send_text(b'{"event":"race"}')
    assert await asyncio.to_thread(entered.wait, TIMEOUT)
    busy, release = threading.Event(), threading.Event()

    def last_iteration() -> None:  # the loop's last callback: it stops once this returns
        busy.set()
        release.wait(TIMEOUT)
        loop.stop()

    loop.call_soon_threadsafe(last_iteration)
    assert await asyncio.to_thread(busy.wait, TIMEOUT)
    go.set()
    await wait_until(lambda: len(loops.inbox(loop)) == 2)  # the frame and the join, queued
    release.set()
    await asyncio.to_thread(thread.join, TIMEOUT)
    await wait_until(lambda: bool(outcome), timeout=TIMEOUT + 5)
    name, took = outcome[0]
    print(f"\nthe join raised {name} after {took:.2f}s")  # noqa: T201
    assert name == "WebSocketClosedError"
    assert delivery.dropped().get((delivery.CONNECTION_CLOSED, "/racing")) == 1  # the frame, counted
    client.close()
    loop.close()


STUCK_SCRIPT = textwrap.dedent(
    """
    import logging, sys, time
    from tornado_websockets.tornadowrapper import TornadoWrapper
    from tornado_websockets.websocket import WebSocket

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    # A grace far longer than the test waits: only a second signal can end the shutdown in time.
    TornadoWrapper.shutdown.__func__.__defaults__ = (120.0,)
    ws = WebSocket("/stuck")

    @ws.on
    def stuck(socket):
        socket.emit("stuck")
        time.sleep(600)  # a def stuck in a blocking call

    TornadoWrapper.run(int(sys.argv[1]), address="127.0.0.1")
    print("exited", flush=True)
    """
)


async def test_a_second_sigint_stops_at_once(tmp_path: Path) -> None:
    """Issue 22 item 7: a second Ctrl-C did not shorten the shutdown."""
    port = free_port()
    process = start_script(tmp_path / "stuck.py", STUCK_SCRIPT, port)
    try:
        client = await connect_raw_with_retry(port, "/stuck")
        client.send_text(b'{"event":"stuck"}')
        await asyncio.to_thread(wait_for_line, process, b"Listening")
        opcode, payload = await asyncio.wait_for(client.read_frame(), TIMEOUT)
        assert json.loads(payload)["event"] == "stuck"
        process.send_signal(signal.SIGINT)
        opcode, payload = await asyncio.wait_for(client.read_frame(), TIMEOUT)
        assert (opcode, payload[:2]) == (0x8, struct.pack("!H", 1001))  # the shutdown is under way
        client.writer.write(client_frame(0x8, payload[:2]))
        await asyncio.to_thread(wait_for_line, process, b"shutting down")
        second = time.monotonic()
        process.send_signal(signal.SIGINT)
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)  # the grace is 120 s
        took = time.monotonic() - second
    finally:
        process.kill()
    print(f"\nexited {took:.2f}s after the second SIGINT")  # noqa: T201
    assert b"again: stopping now" in output
    assert b"exited" in output
    assert process.returncode == 0
