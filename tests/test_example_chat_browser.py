"""The example chat in headless Chromium: who is online, and the messages a dropped page missed.

``demo`` and ``alice`` chat from two browser contexts of the example project under ``runtornado``.
Screenshots land in ``tests/artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import RunTornado, Tab, chromium
from tests.example_browser import example_server, logged_in


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def example(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunTornado]:
    with example_server(tmp_path_factory.mktemp("chat")) as server:
        yield server


@pytest.fixture
def pair(browser: Browser, example: RunTornado) -> Iterator[tuple[Tab, Tab]]:
    """demo and alice, each on the chat page and connected."""
    tabs = (logged_in(browser, example, "demo"), logged_in(browser, example, "alice"))
    for tab in tabs:
        tab.page.goto(example.url("/chat/"))
        expect(tab.page.locator("#status")).to_have_text("connected")
    yield tabs
    for tab in tabs:
        tab.close()
        assert tab.errors == []


def say(tab: Tab, text: str) -> None:
    tab.page.fill("#chat-input", text)
    tab.page.press("#chat-input", "Enter")


def test_the_online_list_shows_the_other_user_and_who_left(pair: tuple[Tab, Tab]) -> None:
    demo, alice = pair
    expect(demo.page.locator("#online li")).to_have_text(["alice", "demo"])  # alice joined after demo
    expect(alice.page.locator("#online li")).to_have_text(["alice", "demo"])  # the list on connect
    alice.screenshot("chat-online")
    alice.page.goto("about:blank")  # alice's last tab leaves
    expect(demo.page.locator("#online li")).to_have_text(["demo"])


def test_a_page_that_drops_gets_the_messages_it_missed(pair: tuple[Tab, Tab]) -> None:
    demo, alice = pair
    say(demo, "before")
    expect(alice.page.locator("#chat-log li")).to_have_text(["demo: before"])
    # A network drop, not ws.close(): the client comes back with what it saw. Automatic reconnection
    # is off for the test, so that the page comes back only once the messages are sent.
    alice.page.evaluate("ws.options.reconnect = null; ws.websocket.close();")
    expect(alice.page.locator("#status")).to_have_text("disconnected")
    for n in range(3):
        say(demo, f"missed {n}")
    expect(demo.page.locator("#chat-log li")).to_have_count(4)  # the server has sent all three
    expect(alice.page.locator("#chat-log li")).to_have_count(1)
    alice.page.evaluate("ws.connect();")
    expect(alice.page.locator("#status")).to_have_text("connected")
    say(demo, "after")
    expected = ["demo: before", "demo: missed 0", "demo: missed 1", "demo: missed 2", "demo: after"]
    expect(alice.page.locator("#chat-log li")).to_have_text(expected)  # in order, no gap, no duplicate
    expect(alice.page.locator("#chat-note")).to_be_hidden()  # recovered: nothing was missed
    expect(alice.page.locator("#online li")).to_have_text(["alice", "demo"])
    alice.screenshot("chat-recovered")
