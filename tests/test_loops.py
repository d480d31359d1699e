"""Handing calls to a loop from other threads: in order, batched, refused once the loop is gone."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import threading
import time
from typing import Any

import pytest

from tests.rawclient import RawClient
from tests.servers import connect_when_up, free_port, running
from tornado_websockets import loops
from tornado_websockets.limits import Limits
from tornado_websockets.server import Server
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


async def test_calls_from_threads_run_on_the_loop_in_the_order_they_were_made() -> None:
    loop = asyncio.get_running_loop()
    ran: list[tuple[int, bool]] = []

    def record(n: int) -> None:
        ran.append((n, threading.current_thread() is threading.main_thread()))

    def from_thread() -> None:
        for n in range(500):
            loops.call_soon(loop, record, n)

    await asyncio.to_thread(from_thread)
    await asyncio.sleep(0)
    while len(ran) < 500:
        await asyncio.sleep(0.01)
    assert ran == [(n, True) for n in range(500)]


async def test_many_calls_share_one_wake_up() -> None:
    loop = asyncio.get_running_loop()
    wake_ups: list[int] = []
    original = loop.call_soon_threadsafe

    def counting(*args: object, **kwargs: object) -> asyncio.Handle:
        wake_ups.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        done: list[int] = []
        await asyncio.to_thread(lambda: [loops.call_soon(loop, done.append, n) for n in range(100)])
        while len(done) < 100:
            await asyncio.sleep(0.01)
    finally:
        del loop.call_soon_threadsafe
    assert done == list(range(100))
    assert 1 <= len(wake_ups) < 100  # queued while a wake-up was pending: not one each


async def test_call_wait_returns_the_result_and_raises_the_error() -> None:
    loop = asyncio.get_running_loop()

    def fails() -> None:
        raise ValueError("on the loop")

    assert await asyncio.to_thread(loops.call_wait, loop, lambda: threading.current_thread().name) == (
        threading.current_thread().name
    )
    with pytest.raises(ValueError, match="on the loop"):
        await asyncio.to_thread(loops.call_wait, loop, fails)


async def test_on_the_loop_itself_calls_run_at_once() -> None:
    loop = asyncio.get_running_loop()
    ran: list[int] = []
    loops.call_soon(loop, ran.append, 1)
    assert ran == [1]
    assert loops.call_wait(loop, lambda: 2) == 2


def test_a_loop_that_has_stopped_or_closed_refuses_calls() -> None:
    loop = asyncio.new_event_loop()
    with pytest.raises(loops.LoopUnavailableError):
        loops.call_soon(loop, print)
    loop.close()
    with pytest.raises(loops.LoopUnavailableError):
        loops.call_wait(loop, print)


def test_a_full_inbox_blocks_a_plain_thread_but_never_the_loops_own() -> None:
    """Issue 22 item 4: past its bound the inbox makes a producing thread wait, never a loop."""
    loop = asyncio.new_event_loop()
    box = loops.Inbox(loop, max_queued=4 * loops.CALL_COST)
    busy, returned, own = threading.Event(), threading.Event(), threading.Event()

    def hold_the_loop() -> None:  # the loop is busy: nothing it was handed runs meanwhile
        busy.wait(10)

    def producer() -> None:
        for _ in range(5):
            box.put(time.sleep, 0)
        returned.set()

    def over_the_bound_on_the_loop() -> None:
        for _ in range(10):
            box.put(time.sleep, 0)  # the loop's own thread: queued at once, never waiting
        own.set()

    loop.call_soon(hold_the_loop)
    loop.call_soon(over_the_bound_on_the_loop)
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        while not loop.is_running():
            time.sleep(0.01)
        thread = threading.Thread(target=producer, daemon=True)
        thread.start()
        assert not returned.wait(0.3)  # the fifth call waits: the loop has taken none
        assert len(box) == 4
        busy.set()
        assert returned.wait(10)
        assert own.wait(10)
    finally:
        busy.set()
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()


async def read_until_end(client: RawClient) -> None:
    """Read the server's frames, unparsed, until the ``end`` event."""
    tail = b""
    while b'"event":"end"' not in tail:
        chunk = await asyncio.wait_for(client.reader.read(65536), 30)
        assert chunk, "the server closed the connection"
        tail = tail[-32:] + chunk


async def test_a_streaming_def_waits_at_the_bound_and_the_loop_keeps_serving() -> None:
    """Issue 22 item 4: a plain ``def`` emitting 100,000 rows queued 58,000-80,000 calls and
    stalled the loop for 0.7-1.4 s; another client's round trips are printed while it streams."""
    rows = 100_000
    ws = WebSocket("/stream", limits=Limits(max_backlog=256 * 1024 * 1024))
    longest = [0]

    @ws.on
    def stream(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        box = loops.inbox(socket.loop)
        for i in range(rows):
            socket.emit("row", {"i": i})
            longest[0] = max(longest[0], len(box))
        socket.emit("end")

    @ws.on
    async def echo(socket: WebSocketHandler, data: dict[str, Any]) -> dict[str, Any]:
        return data

    async with serve() as server:
        streamer = await RawClient.connect(server.port, "/stream")
        async with server.connect("/stream") as other:
            streamer.send_text(b'{"event":"stream","data":{}}')
            round_trips: list[float] = []
            reading = asyncio.ensure_future(read_until_end(streamer))
            while not reading.done():
                started = time.perf_counter()
                await other.request("echo", {})
                round_trips.append(time.perf_counter() - started)
                await asyncio.sleep(0.01)
            await reading
            round_trips.sort()
            print(  # noqa: T201 - the figure the issue asks for
                f"\n{rows} rows streamed; another client's round trips: {len(round_trips)}, median "
                f"{round_trips[len(round_trips) // 2] * 1000:.1f} ms, max {round_trips[-1] * 1000:.1f} ms; "
                f"longest inbox {longest[0]} calls"
            )
        streamer.close()
    assert longest[0] <= loops.MAX_QUEUED // loops.CALL_COST


# The quick starter as a script uses it: the event function says which loop runs it.
UVLOOP_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from tornado_websockets.tornadowrapper import TornadoWrapper
    from tornado_websockets.websocket import WebSocket

    ws = WebSocket("/which")

    @ws.on
    async def which(socket, data):
        loop = type(asyncio.get_running_loop())
        socket.emit("loop", {"loop": f"{loop.__module__}.{loop.__qualname__}", "n": data["n"]})

    TornadoWrapper.run(int(sys.argv[1]), address="127.0.0.1", loop=sys.argv[2])
    print("exited cleanly", flush=True)
    """
)


@pytest.mark.parametrize(("name", "expected"), [("uvloop", "uvloop.Loop"), ("asyncio", "asyncio.")])
async def test_a_server_run_on_the_chosen_loop_answers_a_real_client(name: str, expected: str) -> None:
    port = free_port()
    async with running(["-c", UVLOOP_SCRIPT, str(port), name]) as server:
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/which")
        for n in range(3):
            await client.emit("which", {"n": n})
            answer = await client.wait_for("loop")
            assert answer["n"] == n
            assert answer["loop"].startswith(expected)
        server.send_signal(signal.SIGTERM)  # the graceful shutdown runs on uvloop too
        assert await client.wait_closed() == 1001
        output, _ = await asyncio.to_thread(server.communicate, timeout=15)
    assert server.returncode == 0, output
    assert "exited cleanly" in output


def test_an_unknown_loop_is_refused_with_the_names_to_use() -> None:
    with pytest.raises(ValueError, match="'asyncio', 'uvloop'"):
        loops.check_loop_name("trio")
    with pytest.raises(ValueError, match="not 'trio'"):
        Server().use_loop("trio")
    with pytest.raises(ValueError, match="not 'trio'"):
        TornadoWrapper.run(0, address="127.0.0.1", loop="trio")  # before anything is bound
    assert TornadoWrapper.tornado_server is None


def test_uvloop_not_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # not importable, as where it is not installed
    assert not loops.loop_available("uvloop")
    for attempt in (lambda: Server().use_loop("uvloop"), lambda: loops.use_loop("uvloop")):
        with pytest.raises(ImportError, match=r"pip install 'django-tornado-websockets\[uvloop\]'"):
            attempt()
    with pytest.raises(ImportError, match="uvloop"):
        TornadoWrapper.run(0, address="127.0.0.1", loop="uvloop")
    assert TornadoWrapper.tornado_server is None


def test_listen_on_uvloop_in_a_thread_serves_there_and_keeps_one_loop_per_thread() -> None:
    server = Server()
    server.use_loop("uvloop")
    server.start_app([])
    seen: list[Any] = []

    def serve_in_thread() -> None:
        first = server.listen(0, "127.0.0.1")
        assert server.io_loop is not None
        loop = loops.asyncio_loop_of(server.io_loop)
        second = server.listen(0, "127.0.0.1")  # a second port: the same loop, not a new one
        seen.extend([type(loop).__module__, loops.asyncio_loop_of(server.io_loop) is loop])
        for http in (first, second):
            http.stop()
        loop.close()

    thread = threading.Thread(target=serve_in_thread)
    thread.start()
    thread.join(10)
    assert seen == ["uvloop", True]
