"""ProgressBar over real sockets: the namespaced init, update and done events a client-side bar listens to."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from tornado_websockets.modules import ProgressBar
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket

PREFIX = "module_progressbar_demo_"


def test_min_above_max_is_refused() -> None:
    with pytest.raises(ValueError, match=r"min \(10\) should not be greater than max \(5\)"):
        ProgressBar("x", min=10, max=5)


async def test_is_done_at_max_only() -> None:
    bar = ProgressBar("x", min=3, max=5)
    WebSocket("/bar").bind(bar)
    async with serve():  # emits need a server loop, even with no client to reach
        assert (bar.current, bar.is_done()) == (3, False)
        bar.tick()
        assert not bar.is_done()
        bar.tick()
        assert (bar.current, bar.is_done()) == (5, True)
        bar.tick()
        assert bar.current == 5
        bar.reset()
        assert (bar.current, bar.is_done()) == (3, False)


async def test_a_bar_reaches_done_and_greets_late_clients() -> None:
    ws = WebSocket("/progress")
    bar = ProgressBar("demo", min=0, max=3)
    ws.bind(bar)
    async with serve() as server, server.connect("/progress") as client:
        assert await client.wait_for(PREFIX + "init") == {
            "indeterminate": False,
            "min": 0,
            "max": 3,
            "current": 0,
        }
        for label in ("a", "b", "c"):
            await asyncio.to_thread(bar.tick, label)  # from a worker thread, as a long task would
        updates = [await client.wait_for(PREFIX + "update") for _ in range(3)]
        assert updates == [
            {"current": 1, "label": "a"},
            {"current": 2, "label": "b"},
            {"current": 3, "label": "c"},
        ]
        assert await client.wait_for(PREFIX + "done") == {}
        async with server.connect("/progress") as late:
            assert (await late.wait_for(PREFIX + "init"))["current"] == 3
        bar.reset()
        assert (await client.wait_for(PREFIX + "init"))["current"] == 0


async def test_done_is_sent_once_per_run() -> None:
    ws = WebSocket("/progress")
    bar = ProgressBar("demo", max=1)
    ws.bind(bar)
    async with serve() as server, server.connect("/progress") as client:
        await client.wait_for(PREFIX + "init")
        bar.tick()
        bar.tick("again")  # past max
        bar.reset()
        events = [(await client.receive()).event for _ in range(4)]
    assert events == [PREFIX + "update", PREFIX + "done", PREFIX + "update", PREFIX + "init"]


async def test_ticks_from_many_threads_arrive_in_order() -> None:
    threads, ticks = 4, 250
    ws = WebSocket("/progress")
    bar = ProgressBar("demo", max=threads * ticks)
    ws.bind(bar)
    async with serve() as server, server.connect("/progress") as client:
        await client.wait_for(PREFIX + "init")
        start = threading.Barrier(threads)

        def work() -> None:
            start.wait()
            for _ in range(ticks):
                bar.tick()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible: between the += and the emit
        try:
            for worker in workers:
                worker.start()
            await asyncio.to_thread(lambda: [worker.join() for worker in workers])
        finally:
            sys.setswitchinterval(interval)
        seen = [(await client.wait_for(PREFIX + "update"))["current"] for _ in range(threads * ticks)]
        assert seen == list(range(1, threads * ticks + 1))
        assert await client.wait_for(PREFIX + "done") == {}


async def test_an_indeterminate_bar_is_never_done() -> None:
    ws = WebSocket("/spinner")
    bar = ProgressBar("busy", indeterminate=True)
    ws.bind(bar)
    async with serve() as server, server.connect("/spinner") as client:
        assert await client.wait_for("module_progressbar_busy_init") == {"indeterminate": True}
        bar.tick("working")
        assert await client.wait_for("module_progressbar_busy_update") == {"label": "working"}
        assert not bar.is_done()
