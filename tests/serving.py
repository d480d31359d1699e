"""Real ``runtornado`` processes of the ``tests.servingapp`` project, for the serving and session tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers import ROOT, free_port

STARTUP_TIMEOUT = 30.0


def serving_env(database: Path, **extra: str) -> dict[str, str]:
    """The environment of the serving project's commands, on the SQLite file ``database``."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.serving_settings",
        "SERVING_DATABASE": str(database),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def manage(env: dict[str, str], *arguments: str) -> str:
    """Run ``django-admin`` with ``env``; its output (a failure fails the test)."""
    done = subprocess.run(
        [sys.executable, "-m", "django", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def migrated(database: Path) -> dict[str, str]:
    """A migrated database with the users ann/ann and bob/bob; the environment using it."""
    env = serving_env(database)
    manage(env, "migrate", "--noinput")
    script = (
        "from django.contrib.auth.models import User\n"
        "for name in ('ann', 'bob'):\n"
        "    User.objects.create_user(name, password=name)\n"
    )
    manage(env, "shell", "-c", script)
    return env


@dataclass
class Served:
    """A running ``runtornado`` process: its ``http://`` base URL, port, process and log file."""

    base: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(errors="replace")

    def open_fds(self) -> int:
        """How many file descriptors the server process holds now."""
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


@contextlib.contextmanager
def runtornado(env: dict[str, str], *options: str) -> Iterator[Served]:
    """``manage.py runtornado`` on a free port, until the block ends (then SIGTERM)."""
    port = free_port()
    # A file, not a pipe: a pipe nobody reads fills up and then blocks the server's logging.
    log = Path(tempfile.mkdtemp(prefix="runtornado-")) / "output.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "runtornado", f"127.0.0.1:{port}", "--noreload", *options],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(f"http://127.0.0.1:{port}", port, process, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers(served.base):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise AssertionError(f"runtornado did not start:\n{served.output()}")
            time.sleep(0.05)
        yield served
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/static/djangotestapp/hello.txt", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
