"""Server and redis-server processes started by the harness, each on a free loopback port."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.servers import ServerSpec

__all__ = [
    "ROOT",
    "cpu_seconds",
    "free_port",
    "package_source",
    "raise_file_limit",
    "redis_server",
    "rss_bytes",
    "server_process",
]

logger = logging.getLogger(__name__)

#: The repository root, on the servers' path so that ``bench`` and ``tornado_websockets`` import.
ROOT = Path(__file__).resolve().parent.parent


def raise_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} was not listening on port {port} after {timeout}s")


def _stop(process: subprocess.Popen[bytes], what: str) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            logger.warning("%s ignored SIGTERM for 15 s: killing it", what)
            process.kill()
            process.wait()


def _environment(pythonpath: str | None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [p for p in (pythonpath, str(ROOT), env.get("PYTHONPATH")) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


@contextlib.contextmanager
def server_process(
    spec: ServerSpec,
    redis_url: str | None = None,
    pythonpath: str | None = None,
    wrapper: list[str] | None = None,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Start one server (``wrapper`` may prefix its command, a profiler), yield its port and process.

    ``pythonpath`` goes first on the server's path: a scratch copy of ``tornado_websockets`` there
    is measured instead of the checkout's.
    """
    port = free_port()
    command = [*(wrapper or []), *spec.command(port, redis_url)]
    # Not from ROOT: ``python -m`` puts its working directory first on the path, where the
    # checkout's tornado_websockets would shadow a scratch copy given in ``pythonpath``.
    workdir = tempfile.gettempdir()
    process = subprocess.Popen(command, cwd=workdir, env=_environment(pythonpath), stdin=subprocess.DEVNULL)
    try:
        _wait_listening(port, process, 60, spec.label)
        yield port, process
    finally:
        _stop(process, spec.label)


def package_source(pythonpath: str | None = None) -> str:
    """Where the servers import ``tornado_websockets`` from, with this ``pythonpath``."""
    command = [sys.executable, "-c", "import tornado_websockets; print(tornado_websockets.__file__)"]
    env = _environment(pythonpath)
    done = subprocess.run(command, cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return "not importable"
    location = Path(done.stdout.strip()).parent
    # Said relative to the checkout: a result file names no machine's directories.
    root = Path(__file__).resolve().parent.parent
    if location.is_relative_to(root):
        return f"{location.relative_to(root)} (this checkout)"
    return "an installed copy (site-packages)" if "site-packages" in location.parts else location.name


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port, no persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        _wait_listening(port, process, 20, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process, "redis-server")


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (a profiler wrapper's child, if any)."""
    import psutil

    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return int(total)
