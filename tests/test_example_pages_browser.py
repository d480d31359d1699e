"""The example project's pages in headless Chromium at desktop and phone widths.

Each page is opened as ``make demo`` serves it (``runtornado``), checked for horizontal overflow at
1280 and 390 px, and screenshotted into ``tests/artifacts/``; the progress page shows one label
format from the first frame to after a reload.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import RunTornado, Tab
from tests.example_browser import logged_in


@pytest.fixture
def demo(browser: Browser, example: RunTornado) -> Iterator[Tab]:
    tab = logged_in(browser, example, "demo")
    yield tab
    tab.close()
    assert tab.errors == []


def test_the_home_page_links_everything_and_fits_a_phone(demo: Tab) -> None:
    page = demo.page
    expect(page.get_by_role("link", name="Event explorer")).to_have_attribute("href", "/ws-api/explorer/")
    expect(page.get_by_role("link", name="Live dashboard")).to_have_attribute("href", "/ws-api/dashboard/")
    expect(page.locator("header nav a", has_text="Dashboard")).to_have_attribute("href", "/ws-api/dashboard/")
    demo.check_widths("home")


def test_the_login_page_fits_a_phone(browser: Browser, example: RunTornado) -> None:
    tab = Tab.open(browser, example.url("/accounts/login/"))
    try:
        tab.check_widths("login")
    finally:
        tab.close()


def test_the_echo_page_fits_a_phone(demo: Tab, example: RunTornado) -> None:
    page = demo.page
    page.goto(example.url("/echo/"))
    expect(page.locator("#status")).to_have_text("connected")
    page.fill("#echo-input", "hello " * 30)  # a long line wraps, it does not widen the page
    page.press("#echo-input", "Enter")
    page.fill("#echo-input", "https://example.com/" + "a" * 120)  # so does one long word
    page.press("#echo-input", "Enter")
    expect(page.locator("#echo-log li")).to_have_count(2)
    demo.check_widths("echo")


def test_the_progress_label_keeps_one_format_and_the_page_fits_a_phone(
    demo: Tab, example: RunTornado
) -> None:
    page = demo.page
    page.goto(example.url("/progress/"))
    expect(page.locator("#status")).to_have_text("connected")
    label = page.locator("#progress-label")
    expect(label).to_have_text("0%")
    page.click("#progress-start")
    expect(page.locator("#progress-done")).to_have_text("done", timeout=20_000)
    expect(label).to_have_text("100%")
    page.reload()
    expect(page.locator("#status")).to_have_text("connected")
    expect(label).to_have_text("100%")  # after a reload: the same format, from the bar's state
    demo.check_widths("progress")
