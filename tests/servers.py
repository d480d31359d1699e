"""Start real server processes for tests: wait for the port, read the output, stop them cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import tornado.httpclient

from tornado_websockets.testing import WebSocketTestClient

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_http(url: str, timeout: float = 20.0) -> None:
    """Retry until ``url`` answers (any status)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await tornado.httpclient.AsyncHTTPClient().fetch(url, raise_error=False, request_timeout=2)
            return
        except (OSError, tornado.httpclient.HTTPClientError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def connect_when_up(url: str, timeout: float = 20.0) -> WebSocketTestClient:
    """Retry a WebSocket connection until the server accepts it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await WebSocketTestClient.connect(url, timeout=2)
        except (OSError, tornado.httpclient.HTTPClientError, TimeoutError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


#: Where each process started by `running` writes its output, by pid (see `output_of`).
_OUTPUTS: dict[int, Path] = {}


def output_of(process: subprocess.Popen[str]) -> str:
    """What a process started by `running` has printed so far (stdout and stderr)."""
    return _OUTPUTS[process.pid].read_text(errors="replace")


async def finished(process: subprocess.Popen[str], timeout: float) -> str:
    """Wait for a process started by `running` to end; everything it printed."""
    await asyncio.to_thread(process.wait, timeout)
    return output_of(process)


@contextlib.asynccontextmanager
async def running(
    args: Sequence[str], env: dict[str, str] | None = None, cwd: Path = ROOT
) -> AsyncIterator[subprocess.Popen[str]]:
    """Run ``python args...`` with the repository importable; SIGTERM and reap it afterwards.

    Its output goes to a file, not a pipe: a pipe nobody reads fills up after 64 KiB (a server
    logging a retry loop, say) and then blocks the server in the middle of a test.
    """
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    with tempfile.NamedTemporaryFile("w", prefix="tws-process-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # the autoreloader's child goes with its parent
        )
    _OUTPUTS[process.pid] = Path(log.name)
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with contextlib.suppress(FileNotFoundError):
            os.remove(_OUTPUTS.pop(process.pid))


def backplane(port: int, url: str) -> list[str]:
    """The arguments of a ``tests.backplane_app`` server on ``port``, on the Redis at ``url``."""
    return ["-m", "tests.backplane_app", "serve", str(port), url]


async def backplane_script(*args: str) -> str:
    """Run ``tests.backplane_app`` in a process of its own (a view, a worker); its standard output."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.backplane_app", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
