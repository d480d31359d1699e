"""Modules over real sockets: the ProgressBar's namespaced init, update and done events."""

from __future__ import annotations

import asyncio

import pytest

from tornado_websockets.modules import Module, ProgressBar
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket


def test_min_above_max_is_refused() -> None:
    with pytest.raises(ValueError, match="min"):
        ProgressBar("x", min=10, max=5)


def test_an_unbound_module_says_how_to_bind_it() -> None:
    with pytest.raises(RuntimeError, match=r"ws\.bind"):
        ProgressBar("x").emit("update")


def test_module_events_are_namespaced() -> None:
    ws = WebSocket("/module")
    module = Module("chat_")
    ws.bind(module)

    @module.on
    def message() -> None: ...

    assert "module_chat_message" in ws.events
    assert ws.modules == [module]


async def test_progress_bar_reaches_done_and_greets_late_clients() -> None:
    ws = WebSocket("/progress")
    bar = ProgressBar("demo", min=0, max=3)
    ws.bind(bar)
    prefix = "module_progressbar_demo_"
    async with serve() as server, server.connect("/progress") as client:
        assert await client.wait_for(prefix + "init") == {
            "indeterminate": False,
            "min": 0,
            "max": 3,
            "current": 0,
        }
        for label in ("a", "b", "c"):
            await asyncio.to_thread(bar.tick, label)  # from a worker thread, as a long task would
        updates = [await client.wait_for(prefix + "update") for _ in range(3)]
        assert updates == [
            {"current": 1, "label": "a"},
            {"current": 2, "label": "b"},
            {"current": 3, "label": "c"},
        ]
        assert await client.wait_for(prefix + "done") == {}
        assert bar.is_done()
        async with server.connect("/progress") as late:
            assert (await late.wait_for(prefix + "init"))["current"] == 3
        bar.reset()
        assert (await client.wait_for(prefix + "init"))["current"] == 0
        assert not bar.is_done()


async def test_an_indeterminate_bar_is_never_done() -> None:
    ws = WebSocket("/spinner")
    bar = ProgressBar("busy", indeterminate=True)
    ws.bind(bar)
    async with serve() as server, server.connect("/spinner") as client:
        assert await client.wait_for("module_progressbar_busy_init") == {"indeterminate": True}
        bar.tick("working")
        assert await client.wait_for("module_progressbar_busy_update") == {"label": "working"}
        assert not bar.is_done()
