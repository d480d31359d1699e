"""The example chat in headless Chromium: who is online, and the messages a dropped page missed.

``demo`` and ``alice`` chat from two browser contexts of the example project under ``runtornado``.
Screenshots land in ``tests/artifacts/``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import RunTornado, Tab
from tests.example_browser import EXAMPLE_PROJECT, logged_in


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


def test_a_message_over_the_limit_cannot_be_typed_and_a_refusal_is_shown(pair: tuple[Tab, Tab]) -> None:
    # The server's limit, read from the example's source (importing it here would register /chat).
    source = (EXAMPLE_PROJECT / "chat" / "websockets.py").read_text()
    limit = re.search(r"^MAX_LENGTH = (\d+)$", source, re.M)
    assert limit is not None
    MAX_LENGTH = int(limit[1])
    demo, _ = pair
    page = demo.page
    assert page.locator("#chat-input").get_attribute("maxlength") == str(MAX_LENGTH)
    page.fill("#chat-input", "x" * (MAX_LENGTH + 20))
    assert len(page.input_value("#chat-input")) == MAX_LENGTH  # the browser stops at the limit
    # A client that sends more anyway (an older page, a script) is told, on the page.
    page.evaluate(f"ws.emit('message', {{message: 'y'.repeat({MAX_LENGTH + 1})}})")
    expect(page.locator("#chat-error")).to_be_visible()
    expect(page.locator("#chat-error")).to_contain_text(
        f"Not sent: a message is 1 to {MAX_LENGTH} characters"
    )
    demo.check_widths("chat-refused")


def test_a_page_whose_sign_in_is_gone_says_so_and_clears_the_online_list(pair: tuple[Tab, Tab]) -> None:
    _, alice = pair
    expect(alice.page.locator("#online li")).to_have_text(["alice", "demo"])
    # The session is gone (a restart with a new database, a log-out elsewhere): the next upgrade is
    # refused by the chat's guard, attempt after attempt.
    alice.page.context.clear_cookies()
    alice.page.evaluate("ws.websocket.close()")  # a drop: the client reconnects by itself
    notice = alice.page.locator("#notice")
    expect(notice).to_contain_text("no longer knows your sign-in", timeout=20_000)
    expect(notice.get_by_role("link", name="Sign in again")).to_have_attribute(
        "href", "/accounts/login/?next=%2Fchat%2F"
    )
    expect(alice.page.locator("#status")).to_have_text("signed out")
    expect(alice.page.locator("#online li")).to_have_count(0)  # not a stale list
    expect(alice.page.locator("#whoami")).to_have_text("You are signed out.")
    alice.check_widths("chat-signed-out")
    alice.page.evaluate("ws.close()")


def test_a_final_close_for_a_sign_out_says_what_to_do(pair: tuple[Tab, Tab], example: RunTornado) -> None:
    """Signing out in another tab closes the chat's socket with 4001; the page says what happened."""
    _, alice = pair
    other = alice.page.context.new_page()  # the same browser, so the same session
    other.goto(example.url("/"))
    other.get_by_role("button", name="Log out").click()
    other.wait_for_load_state()
    expect(alice.page.locator("#notice")).to_contain_text("You were signed out")
    expect(alice.page.locator("#notice a")).to_have_text("Sign in again")
    expect(alice.page.locator("#online li")).to_have_count(0)
    expect(alice.page.locator("#whoami")).to_have_text("You are signed out.")


def test_changing_your_own_password_keeps_your_tabs_and_signs_out_your_other_browser(
    browser: Browser, example: RunTornado
) -> None:
    """Django's password change keeps this browser signed in: its other tab reconnects without a word,
    while alice's second browser is signed out (4001)."""
    here, elsewhere = logged_in(browser, example, "alice"), logged_in(browser, example, "alice")
    try:
        for tab in (here, elsewhere):
            tab.page.goto(example.url("/chat/"))
            expect(tab.page.locator("#status")).to_have_text("connected")
        # Record every close the chat tab's client sees.
        here.page.evaluate("window.closes = []; ws.on('close', (e) => closes.push(e.code));")
        changing = here.page.context.new_page()  # a second tab of the same browser
        changing.goto(example.url("/accounts/password_change/"))
        changing.fill("input[name=old_password]", "alice")
        changing.fill("input[name=new_password1]", "a-new-Passw0rd-2")
        changing.fill("input[name=new_password2]", "a-new-Passw0rd-2")
        changing.get_by_role("button", name="Change my password").click()
        changing.wait_for_url(example.url("/accounts/password_change/done/"))

        notice = elsewhere.page.locator("#notice")
        expect(notice).to_contain_text("You were signed out")
        expect(elsewhere.page.locator("#chat-input")).to_be_disabled()

        here.page.wait_for_function("() => closes.length > 0")
        assert here.page.evaluate("closes") == [4100]  # "reconnect now", not "signed out"
        expect(here.page.locator("#status")).to_have_text("connected")
        expect(here.page.locator("#notice")).to_be_hidden()
        expect(here.page.locator("#chat-input")).to_be_enabled()
        say(here, "still here")
        expect(here.page.locator("#chat-log li")).to_have_text(["alice: still here"])
        assert here.page.evaluate("ws.websocket.readyState") == 1
        assert here.page.request.get(example.url("/chat/")).status == 200
    finally:
        example.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User\n"
            "u = User.objects.get(username='alice')\nu.set_password('alice')\nu.save()",
        )
        here.close()
        elsewhere.close()


def test_a_flood_is_cut_by_the_rate_limit_and_logged_once(pair: tuple[Tab, Tab], example: RunTornado) -> None:
    """10,000 messages in a burst: the others get a handful, the flooder is closed (1008), one log line."""
    demo, alice = pair
    before = example.log.read_text(errors="replace").count("kept sending past the rate limit")
    demo.page.evaluate("for (let n = 0; n < 10000; n++) ws.emit('message', {message: `flood ${n}`});")
    expect(demo.page.locator("#status")).to_have_text("closed")
    expect(demo.page.locator("#notice")).to_contain_text("1008")
    say(alice, "after the flood")
    expect(alice.page.locator("#chat-log li").last).to_have_text("alice: after the flood")
    received = alice.page.locator("#chat-log li").count() - 1
    print(f"\nalice received {received} of the 10000 flooded messages")  # noqa: T201 - the figure
    assert received <= 40
    assert example.log.read_text(errors="replace").count("kept sending past the rate limit") - before == 1


def test_a_signed_out_chat_page_no_longer_shows_the_user_nor_a_send_button(
    pair: tuple[Tab, Tab], example: RunTornado
) -> None:
    _, alice = pair
    expect(alice.page.locator("header")).to_contain_text("alice")
    other = alice.page.context.new_page()
    other.goto(example.url("/"))
    other.get_by_role("button", name="Log out").click()
    other.wait_for_load_state()
    expect(alice.page.locator("#notice")).to_contain_text("You were signed out")
    expect(alice.page.locator("header")).not_to_contain_text("alice")
    expect(alice.page.get_by_role("button", name="Log out")).to_have_count(0)
    expect(alice.page.locator("#account a")).to_have_text("Log in")
    expect(alice.page.locator("#chat-form button")).to_be_disabled()
    expect(alice.page.locator("#chat-input")).to_be_disabled()


def test_changepassword_in_another_process_signs_the_page_out(
    pair: tuple[Tab, Tab], example: RunTornado
) -> None:
    """``manage.py changepassword alice`` (no Redis: no signal reaches the server): the page is
    signed out within the session check interval (1 s here, 30 s by default)."""
    demo, alice = pair
    try:
        since = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(EXAMPLE_PROJECT / "manage.py"), "changepassword", "alice"],
            cwd=EXAMPLE_PROJECT,
            env=example.env,
            input="a-new-Passw0rd-3\na-new-Passw0rd-3\n",
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,  # no terminal: getpass reads the answers from stdin
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        expect(alice.page.locator("#notice")).to_contain_text("You were signed out", timeout=30_000)
        print(  # noqa: T201 - the figure the issue asks for
            f"\nchangepassword in another process: the page was signed out {time.monotonic() - since:.2f} s "
            "after the command started"
        )
        expect(alice.page.locator("#chat-input")).to_be_disabled()
        expect(demo.page.locator("#status")).to_have_text("connected")  # demo is not alice
    finally:
        example.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User\n"
            "u = User.objects.get(username='alice')\nu.set_password('alice')\nu.save()",
        )
