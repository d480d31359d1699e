"""Handing calls to a loop from other threads: in order, batched, refused once the loop is gone."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tornado_websockets import loops


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
