"""WorkerPool: daemon threads, a plain completion callback, still an Executor."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tornado_websockets.workers import WorkerPool


def test_run_calls_done_in_the_worker_with_the_result_or_the_error() -> None:
    pool = WorkerPool(2)
    results: list[tuple[object, object, str]] = []
    finished = threading.Event()

    def done(result: object, error: BaseException | None) -> None:
        results.append((result, type(error).__name__ if error else None, threading.current_thread().name))
        if len(results) == 2:
            finished.set()

    pool.run(lambda: 41 + 1, done)
    pool.run(lambda: 1 / 0, done)
    assert finished.wait(5)
    assert {r[:2] for r in results} == {(42, None), (None, "ZeroDivisionError")}
    assert all(r[2].startswith("tornado-websockets") for r in results)


async def test_it_is_an_executor_for_run_in_executor() -> None:
    pool = WorkerPool(1)
    assert await asyncio.get_running_loop().run_in_executor(pool, sum, [1, 2, 3]) == 6


def test_no_more_than_max_workers_run_at_once() -> None:
    pool = WorkerPool(3)
    running, peak, lock = 0, 0, threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    futures = [pool.submit(work) for _ in range(20)]
    for future in futures:
        future.result(5)
    assert peak == 3


def test_around_wraps_every_call() -> None:
    calls: list[str] = []

    def around(fn: object) -> object:
        calls.append("before")
        try:
            return fn()  # type: ignore[operator]
        finally:
            calls.append("after")

    assert WorkerPool(1, around=around).submit(lambda: "x").result(5) == "x"
    assert calls == ["before", "after"]


def test_max_workers_is_checked() -> None:
    with pytest.raises(ValueError, match="positive int"):
        WorkerPool(0)


def test_a_hung_call_does_not_keep_the_process_alive() -> None:
    script = textwrap.dedent(
        """
        import time
        from tornado_websockets.workers import WorkerPool
        WorkerPool(1).submit(time.sleep, 60)
        time.sleep(0.2)
        print("leaving", flush=True)
        """
    )
    started = time.monotonic()
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30, check=True)
    assert output.stdout == b"leaving\n"
    assert time.monotonic() - started < 20  # the 60 s call was not waited for
