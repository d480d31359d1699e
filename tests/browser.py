"""Real headless Chromium (Debian's own, never a downloaded one) and real servers for the browser tests.

`ServerThread` serves TornadoWrapper's application from a thread with its own event loop, so the
synchronous Playwright API can drive the browser from the test thread; it stops and starts again on
the same port. `RunTornado` runs ``manage.py runtornado`` of the example project as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

import tornado_websockets
from tests.requirements import require_binary
from tornado_websockets.tornadowrapper import TornadoWrapper

__all__ = [
    "ARTIFACTS",
    "CHROMIUM_ARGS",
    "REPOSITORY",
    "STATIC_ROOT",
    "WIDTHS",
    "RunTornado",
    "ServerThread",
    "Tab",
    "chromium",
    "free_port",
]

REPOSITORY = Path(__file__).resolve().parent.parent
STATIC_ROOT = Path(tornado_websockets.__file__).resolve().parent / "static"
#: Screenshots of the test run (git-ignored): look at them.
ARTIFACTS = REPOSITORY / "tests" / "artifacts"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: The screens every page is checked on: a desktop and a phone (an iPhone 12 to 15 is 390 px wide).
WIDTHS = {"desktop": (1280, 800), "phone": (390, 844)}

#: Seconds to wait for a server to come up or go away.
STARTUP_TIMEOUT = 20.0


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium from ``/usr/bin/chromium`` (skips locally, fails in CI, when missing)."""
    executable = require_binary("chromium", "apt-get install chromium")
    with sync_playwright() as playwright:
        browser = _launch(playwright, executable)
        try:
            yield browser
        finally:
            browser.close()


def _launch(playwright: Playwright, executable: str) -> Browser:
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


@dataclass
class Tab:
    """A page in a fresh browser context, with what it logged to the console and the errors it raised."""

    page: Page
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Browser, url: str | None = None) -> Tab:
        """A new context and page; goes to ``url`` when given."""
        page = browser.new_context().new_page()
        page.set_default_timeout(10_000)
        tab = cls(page)
        page.on("console", tab._on_console)
        page.on("pageerror", lambda error: tab.errors.append(str(error)))
        if url is not None:
            page.goto(url)
        return tab

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append((message.type, message.text))

    def warnings(self) -> list[str]:
        """The text of every ``console.warn`` so far."""
        return [text for kind, text in self.console if kind == "warning"]

    def screenshot(self, name: str) -> Path:
        """Save a full-page screenshot as ``tests/artifacts/<name>.png``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def overflow(self) -> int:
        """How many CSS pixels the page is wider than the window (0: no horizontal scrolling)."""
        return int(self.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))

    def check_widths(self, name: str) -> None:
        """At each of `WIDTHS`: no horizontal overflow, and a screenshot ``<name>-<width>.png``."""
        for label, (width, height) in WIDTHS.items():
            self.page.set_viewport_size({"width": width, "height": height})
            self.page.wait_for_function(f"() => window.innerWidth === {width}")
            self.screenshot(f"{name}-{label}")
            assert self.overflow() <= 0, f"{name} is {self.overflow()} px too wide at {width} px"

    def close(self) -> None:
        """Close the page's context (its sockets close with it)."""
        self.page.context.close()


class ServerThread:
    """The registered WebSockets plus ``handlers``, served on 127.0.0.1 from a thread of its own."""

    def __init__(self, handlers: Sequence[Any] = ()) -> None:
        self.handlers = list(handlers)
        self.port = 0
        self.running = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="browser-test-server", daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        """The ``http://`` URL of ``path``."""
        return f"http://127.0.0.1:{self.port}{path}"

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = STARTUP_TIMEOUT) -> Any:
        """Run ``coroutine`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> None:
        """Listen, on the port of the previous start if there was one (else a free one)."""
        self.run(self._start())
        self.running = True

    async def _start(self) -> None:
        TornadoWrapper.start_app(self.handlers)
        TornadoWrapper.listen(self.port, "127.0.0.1")
        assert TornadoWrapper.tornado_port is not None
        self.port = TornadoWrapper.tornado_port

    def stop(self) -> None:
        """Stop listening and close every connection with 1001, as a deploy does."""
        self.running = False
        self.run(TornadoWrapper.shutdown(grace=1.0))

    def close(self) -> None:
        """Stop the server if it runs, then the loop and its thread."""
        if self.running:
            self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(STARTUP_TIMEOUT)
        self.loop.close()


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RunTornado:
    """``python manage.py runtornado <port>`` of the example project, as a subprocess."""

    def __init__(self, project: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.project = project
        self.port = port
        #: The server's output, over every start of this run.
        self.log = ARTIFACTS / "runtornado.log"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.log.write_bytes(b"")
        # The test process may have set another project's settings (tests.django_settings).
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "example.settings", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "/") -> str:
        """The ``http://`` URL of ``path``."""
        return f"http://127.0.0.1:{self.port}{path}"

    def manage(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run another management command of the project; fails the test if it fails."""
        command = [sys.executable, str(self.project / "manage.py"), *arguments]
        done = subprocess.run(
            command, cwd=self.project, env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(arguments)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )
        return done

    def start(self) -> None:
        """Start the server and wait until it answers HTTP."""
        # --noreload: SIGTERM then reaches the server itself, not the autoreloader's parent process.
        command = [
            sys.executable,
            str(self.project / "manage.py"),
            "runtornado",
            "--noreload",
            str(self.port),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.project, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None:
                raise AssertionError(f"runtornado exited with {self.process.returncode}: see {self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"runtornado did not answer within {STARTUP_TIMEOUT}s: see {self.log}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/"), timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer means it is serving
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown: clients get 1001), then wait for the process to exit."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.process = None
