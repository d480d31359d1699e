"""Each frame's event function runs as an asyncio task of its own, as under stock Tornado.

``asyncio.timeout``, ``TaskGroup``, anyio (through httpx) and ``ContextVar`` behave as they do
anywhere else; frames of one connection still run in order; other connections are served between
one connection's frames.
"""

from __future__ import annotations

import asyncio
import contextvars
import statistics
import sys
import time
from typing import Any

import httpx
import tornado.web

from tests.polling import wait_until
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket

request_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("request_id", default=None)


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"hello": "world"})


tasks: list[asyncio.Task[Any] | None] = []


def _tasks_app() -> WebSocket:
    ws = WebSocket("/tasks")

    @ws.on
    async def slow_with_timeout(socket: Any) -> str:
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(5)
        except TimeoutError:
            return "timed out"
        return "not timed out"

    @ws.on
    async def group(socket: Any) -> None:
        async def fails() -> None:
            await asyncio.sleep(0)
            raise ValueError("a child failed")

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(fails())
            tasks.create_task(asyncio.sleep(1))

    @ws.on
    async def fetch(socket: Any, data: dict[str, Any]) -> Any:
        async with httpx.AsyncClient() as client:
            response = await client.get(data["url"])
        return response.json()

    @ws.on
    async def remember(socket: Any, data: dict[str, Any]) -> Any:
        before = request_id.get()
        request_id.set(data["n"])
        return before

    @ws.on
    async def whoami(socket: Any) -> bool:
        task = asyncio.current_task()
        tasks.append(task)  # kept alive, so that no two share an id
        assert task is not None
        return "_receive_frame_loop" in repr(task.get_coro())  # Tornado's reading task?

    @ws.on
    async def ping(socket: Any) -> None:
        socket.emit("pong")

    @ws.on
    async def cheap(socket: Any, data: dict[str, Any]) -> None:
        if data["last"]:
            socket.emit("flood_done")

    return ws


async def test_asyncio_timeout_raises_in_the_function_not_on_the_connection() -> None:
    _tasks_app()
    async with serve() as server, server.connect("/tasks") as client:
        assert await client.request("slow_with_timeout") == "timed out"
        assert await client.request("slow_with_timeout") == "timed out"  # the connection lives on


async def test_a_task_group_whose_child_raises_earns_the_error_event() -> None:
    _tasks_app()
    async with serve() as server, server.connect("/tasks") as client:
        await client.emit("group")
        error = await client.wait_for("error")
        assert error["event"] == "group"
        await client.emit("ping")
        assert await client.wait_for("pong") == {}
        assert client.close_code is None


async def test_httpx_inside_an_event_function() -> None:
    _tasks_app()
    async with serve([("/hello", Hello)]) as server, server.connect("/tasks") as client:
        reply = await client.request("fetch", {"url": server.http_url("/hello")})
        assert reply == {"hello": "world"}


async def test_a_context_variable_set_in_one_frame_is_not_seen_in_the_next() -> None:
    _tasks_app()
    async with serve() as server, server.connect("/tasks") as client:
        assert await client.request("remember", {"n": 1}) is None
        assert await client.request("remember", {"n": 2}) is None


async def test_each_frame_runs_in_a_task_of_its_own() -> None:
    _tasks_app()
    async with serve() as server, server.connect("/tasks") as client:
        tasks.clear()
        assert await client.request("whoami") is False  # not the connection's reading task
        assert await client.request("whoami") is False
        first, second = tasks
        assert first is not second


async def test_other_clients_are_served_while_one_floods() -> None:
    _tasks_app()
    flood = 20_000
    async with serve() as server, server.connect("/tasks") as flooder, server.connect("/tasks") as other:
        for n in range(flood):  # written to the socket before the server has read any of it
            last = "true" if n == flood - 1 else "false"
            flooder.connection.write_message(f'{{"event":"cheap","data":{{"last":{last}}}}}')
        round_trips: list[float] = []
        done = asyncio.ensure_future(flooder.wait_for("flood_done", timeout=60))
        while not done.done():
            started = time.perf_counter()
            await other.emit("ping")
            await other.wait_for("pong")
            round_trips.append(time.perf_counter() - started)
        await done
        # Reported, not asserted on time: the machine is shared. What must hold is that the other
        # client was served during the flood, not after it.
        print(  # noqa: T201 - the figure the issue asks to report
            f"\nduring a flood of {flood} frames: {len(round_trips)} round trips of the other client, "
            f"median {statistics.median(round_trips) * 1000:.2f} ms"
        )
        assert len(round_trips) >= 2


async def test_frames_of_one_connection_still_run_in_arrival_order() -> None:
    ws = WebSocket("/ordered")
    seen: list[int] = []

    @ws.on
    async def step(socket: Any, data: dict[str, Any]) -> None:
        if data["n"] % 3 == 0:
            await asyncio.sleep(0.01)  # a suspending frame must not be overtaken by the next
        seen.append(data["n"])

    async with serve() as server, server.connect("/ordered") as client:
        for n in range(30):
            await client.emit("step", {"n": n})
        await wait_until(lambda: len(seen) == 30)
        assert seen == list(range(30))


async def test_a_function_task_cancelled_from_outside_lets_the_next_frame_run() -> None:
    # The reader goes on to the next frame when a function's task says it returned (not from a
    # done callback): a task cancelled by code that does not own it must say so too.
    ws = WebSocket("/cancelled")
    started = asyncio.Event()
    running: list[asyncio.Task[Any]] = []

    @ws.on
    async def hang(socket: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.append(task)
        started.set()
        await asyncio.Event().wait()

    @ws.on
    async def ping(socket: Any) -> None:
        socket.emit("pong")

    async with serve() as server, server.connect("/cancelled") as client:
        await client.emit("hang")
        await client.emit("ping")  # waits in the connection's queue behind "hang"
        await asyncio.wait_for(started.wait(), 5)
        running[0].cancel()
        assert await client.wait_for("pong") == {}
        await client.emit("ping")
        assert await client.wait_for("pong") == {}


async def test_a_function_task_cancelled_before_its_first_step_lets_the_next_frame_run() -> None:
    # On Python 3.11 a task starts at the loop's next turn, so code that cancels it first (here a
    # task factory) stops its function from ever running: nothing in it can say it returned.
    # From 3.12 tasks start eagerly (the factory is not used): the frames just run.
    ws = WebSocket("/unstarted")
    ran: list[str] = []

    @ws.on
    async def victim(socket: Any) -> None:
        ran.append("victim")

    @ws.on
    async def ping(socket: Any) -> None:
        ran.append("ping")
        socket.emit("pong")

    cancelled: list[asyncio.Task[Any]] = []

    def cancel_victims(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        function = getattr(coro, "cr_frame", None) and coro.cr_frame.f_locals.get("function")
        if getattr(function, "name", None) == "victim":
            task.cancel()
            cancelled.append(task)
        return task

    loop = asyncio.get_running_loop()
    loop.set_task_factory(cancel_victims)
    try:
        async with serve() as server, server.connect("/unstarted") as client:
            await client.emit("victim")
            if sys.version_info < (3, 12):  # the next frame comes once the victim's task is over
                await wait_until(lambda: bool(cancelled))
                await asyncio.wait(cancelled)
            await client.emit("ping")
            assert await client.wait_for("pong") == {}
            await client.emit("ping")
            assert await client.wait_for("pong") == {}
    finally:
        loop.set_task_factory(None)
    # On 3.11 the victim never ran; from 3.12 it ran at once, eagerly.
    assert ran == (["ping", "ping"] if sys.version_info < (3, 12) else ["victim", "ping", "ping"])
