"""Shutdown and the end of a loop: what was accepted is delivered, what is lost is counted.

Issue 22 items 6 and 7: event functions counted per loop (a plain ``def`` outliving its loop leaked
``in_flight``), a shutdown that waits for each connection's buffered writes and closing handshake,
calls handed to a loop in its last iteration, and a second Ctrl-C.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tests.polling import wait_until
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

TIMEOUT = 10


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
