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
    expect(page.locator("#progress-done")).to_have_text("running")  # not an empty "Task:"
    expect(page.locator("#progress-done")).to_have_text("done", timeout=20_000)
    expect(label).to_have_text("100%")
    page.reload()
    expect(page.locator("#status")).to_have_text("connected")
    expect(label).to_have_text("100%")  # after a reload: the same format, from the bar's state
    demo.check_widths("progress")


def test_a_watcher_sees_the_task_running(demo: Tab, browser: Browser, example: RunTornado) -> None:
    """A second page, which did not start the task, says it runs while it runs."""
    watcher = logged_in(browser, example, "alice")
    try:
        for page in (demo.page, watcher.page):
            page.goto(example.url("/progress/"))
            expect(page.locator("#status")).to_have_text("connected")
        demo.page.click("#progress-start")
        expect(watcher.page.locator("#progress-done")).to_have_text("running")
        expect(watcher.page.locator("#progress-done")).to_have_text("done", timeout=20_000)
    finally:
        watcher.close()


def test_echo_sends_any_json_value_back_as_json(demo: Tab, example: RunTornado) -> None:
    page = demo.page
    page.goto(example.url("/echo/"))
    expect(page.locator("#status")).to_have_text("connected")
    page.evaluate("ws.emit('echo', {message: [1, 2, {a: true}]})")
    expect(page.locator("#echo-log li")).to_have_text(['[1,2,{"a":true}]'])  # JSON, not Python's repr


@pytest.mark.parametrize("who", ["anonymous", "alice"])
def test_the_live_dashboard_link_leads_others_to_the_login_page(
    browser: Browser, example: RunTornado, who: str
) -> None:
    tab = Tab.open(browser, example.url("/")) if who == "anonymous" else logged_in(browser, example, who)
    try:
        tab.page.get_by_role("link", name="Live dashboard").click()
        tab.page.wait_for_load_state()
        assert tab.page.url.startswith(example.url("/admin/login/?next=/ws-api/dashboard/"))
        tab.check_widths(f"dashboard-login-{who}")
    finally:
        tab.close()
