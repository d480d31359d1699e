"""Several processes on one port: the fork supervisor, and run(processes=2) with the Redis backplane."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.servers import connect_when_up, free_port, output_of, running
from tornado_websockets.broker_redis import DEFAULT_CHANNEL
from tornado_websockets.processes import worker_count
from tornado_websockets.testing import WebSocketTestClient
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket


@pytest.mark.parametrize(("processes", "count"), [(1, 1), (3, 3), (0, os.cpu_count() or 1)])
def test_worker_count(processes: int, count: int) -> None:
    assert worker_count(processes) == count


@pytest.mark.parametrize("processes", [-1, True, "2", 1.5])
def test_worker_count_refuses_nonsense(processes: Any) -> None:
    with pytest.raises(ValueError, match="processes should be an int"):
        worker_count(processes)


def test_several_processes_need_a_cross_process_backplane() -> None:
    WebSocket("/chat")
    port = free_port()
    with pytest.raises(ValueError, match="cross-process backplane"):
        TornadoWrapper.run(port, address="127.0.0.1", processes=2)
    assert TornadoWrapper.tornado_server is None  # refused before binding or forking


SUPERVISED = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from tornado_websockets.processes import fork_workers

    number = fork_workers(2)
    Path(sys.argv[1], f"{number}-{os.getpid()}").touch()
    signal.pause()  # until SIGTERM (the default action ends the worker)
    """
)


async def test_the_supervisor_restarts_a_dead_worker_and_stops_them_all(tmp_path: Path) -> None:
    script = tmp_path / "supervised.py"
    script.write_text(SUPERVISED)
    started = tmp_path / "started"
    started.mkdir()

    def workers() -> dict[str, int]:
        return {name.partition("-")[0]: int(name.partition("-")[2]) for name in os.listdir(started)}

    async with running([str(script), str(started)]) as parent:
        await wait_until(lambda: len(workers()) == 2)
        first = workers()
        os.kill(first["0"], signal.SIGKILL)  # a crash: worker 0 comes back with a new pid
        await wait_until(lambda: len(os.listdir(started)) == 3)
        assert parent.poll() is None
        parent.send_signal(signal.SIGTERM)  # passed on to both workers
        assert await asyncio.to_thread(parent.wait, 10) == 0
        pids = [int(name.partition("-")[2]) for name in os.listdir(started)]
    assert sorted(name.partition("-")[0] for name in os.listdir(started)) == ["0", "0", "1"]
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # every worker is gone with the parent
            os.kill(pid, 0)


async def test_two_processes_on_one_port_share_emits_through_redis(tmp_path: Path) -> None:
    port = free_port()
    with RedisServer.running(tmp_path) as redis_server:
        args = ["-m", "tests.backplane_app", "serve", str(port), redis_server.url, "2"]
        async with running(args) as parent:
            try:
                await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
            except AssertionError as error:
                raise AssertionError(f"{error}; the servers printed:\n{output_of(parent)}") from None
            clients: list[WebSocketTestClient] = []
            places: dict[int, str] = {}  # pid -> broker id
            # The kernel hands each connection to either process: connect until both have some.
            while len(places) < 2 or len(clients) < 4:
                assert len(clients) < 60, f"every connection went to one process: {places}"
                client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/chat")
                clients.append(client)
                pid = (await client.request("whoami"))["pid"]
                places[pid] = (await client.request("backplane"))["id"]
            assert len(set(places.values())) == 2  # each process is its own member of the backplane

            first_pid = next(iter(places))  # the process of clients[0]
            await clients[0].emit("say", {"text": "to both processes"})
            for client in clients:
                assert await client.wait_for("said") == {"text": "to both processes", "pid": first_pid}

            parent.send_signal(signal.SIGTERM)  # the parent passes it on; each process closes gracefully
            for client in clients:
                assert await client.wait_closed() == 1001
            assert await asyncio.to_thread(parent.wait, 10) == 0, output_of(parent)
