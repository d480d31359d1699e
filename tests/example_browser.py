"""The example project under ``runtornado`` for browser tests, and its demo users logged in Chromium."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Browser

from tests.browser import REPOSITORY, RunTornado, Tab, free_port

__all__ = ["EXAMPLE_PROJECT", "example_server", "logged_in"]

EXAMPLE_PROJECT = REPOSITORY / "example_project"


@contextlib.contextmanager
def example_server(folder: Path) -> Iterator[RunTornado]:
    """The example project (DEBUG on) with a database in ``folder``, the demo users seeded, and
    sessions re-validated every second."""
    # Sessions checked every second: a session that ends elsewhere reaches the pages quickly.
    env = {"EXAMPLE_DATABASE": str(folder / "db.sqlite3"), "EXAMPLE_SESSION_CHECK": "1"}
    server = RunTornado(EXAMPLE_PROJECT, free_port(), env=env)
    server.manage("migrate", "--noinput")
    server.manage("seeddemo")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def logged_in(browser: Browser, example: RunTornado, username: str) -> Tab:
    """A new browser context logged in as a demo user (password = username), on the home page."""
    tab = Tab.open(browser, example.url("/accounts/login/"))
    page = tab.page
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", username)
    page.press("input[name=password]", "Enter")
    page.wait_for_url(example.url("/"))
    return tab
