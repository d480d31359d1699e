"""A connection's public methods are safe from any thread, and their effect is visible on return.

Plain ``def`` event functions run in worker threads; whatever they do to the socket is carried out
on the loop that serves it, in the order they did it.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.polling import wait_until
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket


def _threads_app() -> tuple[WebSocket, dict[str, Any]]:
    ws = WebSocket("/threads")
    seen: dict[str, Any] = {}

    @ws.on
    def join_then_read(socket: Any, data: dict[str, Any]) -> list[str]:
        socket.join(data["room"])
        return sorted(socket.rooms)

    @ws.on
    def leave_then_read(socket: Any, data: dict[str, Any]) -> list[str]:
        socket.leave(data["room"])
        return sorted(socket.rooms)

    @ws.on
    def close_me(socket: Any) -> None:
        socket.join("doomed")
        socket.close(4000, "bye")
        seen["closed"] = socket.is_closed
        seen["linked"] = socket in ws.handlers
        seen["members"] = len(ws.rooms.members("doomed"))

    @ws.on
    def identify(socket: Any, data: dict[str, Any]) -> list[Any]:
        socket.user_id = data["user"]
        socket.user_state.visits = getattr(socket.user_state, "visits", 0) + 1
        return list(ws.users)

    @ws.on
    def chatter(socket: Any, data: dict[str, Any]) -> str:
        socket.emit("one")
        ws.emit("two", room=None)
        socket.emit_warning("three")
        socket.emit("four")
        return "five"

    @ws.on
    def where(socket: Any) -> str:
        return threading.current_thread().name

    @ws.on(blocking=False)
    def where_on_loop(socket: Any) -> bool:
        return threading.current_thread() is seen["loop_thread"]

    return ws, seen


async def test_join_then_rooms_in_a_def_always_shows_the_room() -> None:
    _threads_app()
    async with serve() as server, server.connect("/threads") as client:
        for n in range(30):
            assert await client.request("join_then_read", {"room": f"r{n}"}) == sorted(
                f"r{k}" for k in range(n + 1)
            )
        for n in range(30):
            rooms = await client.request("leave_then_read", {"room": f"r{n}"})
            assert f"r{n}" not in rooms


async def test_close_from_a_def_runs_on_the_loop_and_is_visible_at_once() -> None:
    ws, seen = _threads_app()
    loop_thread = threading.current_thread()
    leave_threads: list[threading.Thread] = []
    original_leave = ws.rooms.leave

    def spying_leave(room: str, member: Any) -> None:
        leave_threads.append(threading.current_thread())
        original_leave(room, member)

    ws.rooms.leave = spying_leave  # type: ignore[method-assign]
    async with serve() as server, server.connect("/threads") as client:
        await client.emit("close_me")
        assert await client.wait_closed() == 4000
        await wait_until(lambda: "members" in seen)
        assert seen == {"closed": True, "linked": False, "members": 0}
        assert leave_threads == [loop_thread]  # unlinked on the loop, not in the worker


async def test_user_id_from_a_def_is_set_on_the_loop() -> None:
    ws, _ = _threads_app()
    async with serve() as server, server.connect("/threads") as one, server.connect("/threads") as two:
        assert await one.request("identify", {"user": 7}) == [7]
        assert await two.request("identify", {"user": 7}) == [7]
        assert ws.user_state(7).visits == 2  # one shared state, counted from both threads


async def test_frames_from_a_def_arrive_in_the_order_it_made_them() -> None:
    _threads_app()
    async with serve() as server, server.connect("/threads") as client:
        for _ in range(20):
            assert await client.request("chatter") == "five"
            events = [frame.event for frame in client.buffered()]
            assert events == ["one", "two", "warning", "four"]
            for _ in events:
                await client.receive()


async def test_a_def_runs_in_a_worker_and_blocking_false_on_the_loop() -> None:
    _, seen = _threads_app()
    seen["loop_thread"] = threading.current_thread()
    async with serve() as server, server.connect("/threads") as client:
        assert (await client.request("where")).startswith("tornado-websockets")
        assert await client.request("where_on_loop") is True


async def test_emit_from_a_thread_outside_any_function() -> None:
    ws, _ = _threads_app()
    async with serve() as server, server.connect("/threads") as client:
        await wait_until(lambda: len(ws.handlers) == 1)
        socket = ws.handlers[0]
        errors: list[BaseException] = []

        def from_thread() -> None:
            try:
                socket.emit("direct", {"n": 1})
                socket.join("side")
                assert "side" in socket.rooms
                ws.to("side").emit("room", {"n": 2})
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=from_thread)
        thread.start()
        assert await client.wait_for("direct") == {"n": 1}
        assert await client.wait_for("room") == {"n": 2}
        thread.join()
        assert errors == []
