"""A real ``redis-server`` for the backplane tests, on a free loopback port, in a temporary directory.

It can be killed and started again on the same port, as an outage would. Without ``redis-server``
the tests that use it skip (locally) or fail (in CI), through `tests.requirements.require_binary`.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.requirements import require_binary
from tests.servers import free_port

__all__ = ["RedisServer"]


class RedisServer:
    """One ``redis-server`` process: no persistence, loopback only."""

    def __init__(self, directory: Path) -> None:
        self.binary = require_binary("redis-server", "apt-get install redis-server")
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} {'running' if self.process else 'stopped'}>"

    @classmethod
    @contextlib.contextmanager
    def running(cls, directory: Path) -> Iterator[RedisServer]:
        """A started server, stopped on the way out."""
        server = cls(directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    @property
    def url(self) -> str:
        """The URL a broker connects to."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (again, after `kill`, on the same port) and wait until it answers."""
        if self.process is not None:
            raise RuntimeError(f"{self!r} is already running")
        options = {"port": str(self.port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
        options |= {"dir": str(self.directory), "logfile": "redis.log"}
        self.process = subprocess.Popen(
            [self.binary, *(item for name, value in options.items() for item in (f"--{name}", value))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "redis.log").read_text(errors="replace")
                    raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; `start` brings it back."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing answers, as with a hung host."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo `pause`."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.process is not None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None

    def client(self) -> redis.Redis:
        """A new client of this server (close it, or use it in a ``with``)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=1)

    def subscribers(self, channel: str) -> int:
        """How many connections subscribe to ``channel`` (one per server process)."""
        with self.client() as client:
            return int(dict(client.pubsub_numsub(channel)).get(channel.encode(), 0))

    def publish_calls(self) -> int:
        """How many PUBLISH commands the server has run since it started."""
        with self.client() as client:
            stats = client.info("commandstats")
        return int(stats.get("cmdstat_publish", {}).get("calls", 0))
