"""Connects run in a pool of their own: a new client's upgrade never queues behind slow functions.

Issue 22 item 5: plain ``def`` guards and the Django session load ran in the event functions'
pool, so with every worker busy in a slow function a new client waited for one to finish.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import tests.djangotestapp.websockets
from tornado_websockets.server import CONNECT_WORKERS
from tornado_websockets.testing import TestServer, WebSocketTestClient, serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler
from tornado_websockets.workers import WorkerPool

WORKERS = 2
#: Seconds after which the slow functions are let go anyway, so that the test ends without the fix.
RELEASE_AFTER = 5.0


@pytest.fixture
def two_workers() -> Iterator[None]:
    """Event functions get a pool of two threads for this test (the suite's pool is kept)."""
    executor, TornadoWrapper.executor = TornadoWrapper.executor, WorkerPool(WORKERS)
    connect_executor, TornadoWrapper.runtime.connect_executor = TornadoWrapper.runtime.connect_executor, None
    try:
        yield
    finally:
        TornadoWrapper.executor = executor
        TornadoWrapper.runtime.connect_executor = connect_executor


def slow_path(path: str, order: list[str], release: threading.Event) -> WebSocket:
    """A path whose ``slow`` plain def holds its worker until ``release``."""
    ws = WebSocket(path)

    @ws.on
    def slow(socket: WebSocketHandler) -> None:
        release.wait(RELEASE_AFTER)
        order.append("slow function finished")

    return ws


async def occupy_every_worker(server: TestServer, path: str) -> list[WebSocketTestClient]:
    """One client per worker, each running ``slow``; returns once every worker is taken."""
    busy = []
    for _ in range(WORKERS):
        client = await server.connect(path)
        await client.emit("slow")
        busy.append(client)
    while TornadoWrapper.in_flight < WORKERS:
        await asyncio.sleep(0.01)
    return busy


@pytest.fixture
async def released() -> AsyncIterator[threading.Event]:
    release = threading.Event()
    try:
        yield release
    finally:
        release.set()


@pytest.mark.usefixtures("two_workers")
async def test_a_plain_def_guard_runs_while_every_event_worker_is_busy(released: threading.Event) -> None:
    order: list[str] = []
    ws = slow_path("/busy", order, released)

    @ws.guard
    def allow(socket: WebSocketHandler) -> bool:
        order.append(f"guard in {threading.current_thread().name.rsplit('-', 1)[0]}")
        return True

    async with serve() as server:
        busy = await occupy_every_worker(server, "/busy")
        order.clear()  # the busy clients' own guards
        async with server.connect("/busy", timeout=RELEASE_AFTER * 2):
            order.append("upgraded")
            released.set()
        while order.count("slow function finished") < WORKERS:
            await asyncio.sleep(0.01)
        for client in busy:
            client.close()
    assert order[:2] == ["guard in tornado-websockets-connect", "upgraded"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("two_workers")
async def test_the_django_session_load_runs_while_every_event_worker_is_busy(
    released: threading.Event,
) -> None:
    importlib.reload(tests.djangotestapp.websockets)  # the suite's clean_wrapper forgot its WebSocket
    order: list[str] = []
    slow_path("/busy", order, released)
    async with serve(django=True) as server:
        busy = await occupy_every_worker(server, "/busy")
        async with server.connect("/discovered", timeout=RELEASE_AFTER * 2) as client:
            order.append("upgraded")
            released.set()
            me: dict[str, Any] = await client.request("whoami")
        while order.count("slow function finished") < WORKERS:
            await asyncio.sleep(0.01)
        for other in busy:
            other.close()
    assert order[0] == "upgraded"
    assert me["authenticated"] is False


def test_the_connect_pool_is_small_and_apart_from_the_event_pool() -> None:
    pool = TornadoWrapper.runtime.get_connect_executor()
    assert isinstance(pool, WorkerPool)
    assert pool is not TornadoWrapper.get_executor()
    assert pool.max_workers == CONNECT_WORKERS
