"""The metrics dashboard in headless Chromium, on the example project served by ``runtornado``.

The staff user ``demo`` watches the dashboard while ``alice`` chats in another browser context:
the table shows the chat's connection and the chart of frames per second draws. Anonymous and
non-staff visitors get 404. Screenshots land in ``tests/artifacts/``.
"""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.browser import RunTornado, Tab
from tests.example_browser import logged_in


def test_staff_see_the_chat_connection_and_the_chart_draws(browser: Browser, example: RunTornado) -> None:
    alice = logged_in(browser, example, "alice")
    demo = logged_in(browser, example, "demo")
    try:
        alice.page.goto(example.url("/chat/"))
        expect(alice.page.locator("#status")).to_have_text("connected")
        page = demo.page
        page.click("text=Dashboard")  # the link shows for staff
        page.wait_for_url(example.url("/ws-api/dashboard/"))  # the page the README names
        expect(page.locator("h1")).to_have_text("WebSocket dashboard")
        expect(page.locator("#status")).to_have_text("connected")
        chat = page.locator('#paths tr[data-path="/chat"] td')
        expect(chat.nth(1)).to_have_text("1")  # connections
        expect(chat.nth(2)).to_have_text("1")  # users
        for n in range(5):  # traffic for the chart: 5 frames in and 5 out
            alice.page.fill("#chat-input", f"message {n}")
            alice.page.press("#chat-input", "Enter")
        expect(alice.page.locator("#chat-log li")).to_have_count(5)
        expect(chat.nth(4)).to_have_text("5")  # frames in
        # Two snapshots make a rate; the line has a point per second from then on.
        page.wait_for_function(
            "document.getElementById('fps-line').getAttribute('points').split(' ').length >= 2"
        )
        assert page.evaluate("Math.max(...rates)") > 0  # the messages made a rate above zero
        expect(page.locator("#backplane")).to_have_text("Broker (local)")
        demo.screenshot("dashboard-staff")
        demo.check_widths("dashboard")
        # On a phone each path is a card whose values carry their column's name.
        expect(chat.nth(1)).to_have_attribute("data-label", "Connections")
        page.click("#home")  # back to the site
        page.wait_for_url(example.url("/"))
        assert demo.errors == []
        assert alice.errors == []
    finally:
        alice.close()
        demo.close()


def test_the_admin_index_links_to_the_dashboard(browser: Browser, example: RunTornado) -> None:
    demo = logged_in(browser, example, "demo")
    try:
        demo.page.goto(example.url("/admin/"))
        box = demo.page.locator("#content-main").get_by_text("WebSockets")
        expect(box).to_be_visible()
        demo.page.get_by_role("link", name="Live dashboard").click()
        demo.page.wait_for_url(example.url("/admin/websockets/"))
        expect(demo.page.locator("#site-name")).to_be_visible()  # the admin's own header
        expect(demo.page.locator(".breadcrumbs")).to_contain_text("WebSocket dashboard")
        expect(demo.page.locator("#status")).to_have_text("connected")
        demo.check_widths("dashboard-admin")
        assert demo.errors == []
    finally:
        demo.close()


def test_anonymous_and_non_staff_visitors_are_sent_to_the_login(
    browser: Browser, example: RunTornado
) -> None:
    anonymous = Tab.open(browser)
    alice = logged_in(browser, example, "alice")
    try:
        # Both pages send anyone who is not staff to the admin's login, not to a DEBUG 404 page.
        anonymous.page.goto(example.url("/ws-api/dashboard/"))
        assert anonymous.page.url.startswith(example.url("/admin/login/?next=/ws-api/dashboard/"))
        anonymous.page.goto(example.url("/admin/websockets/"))
        assert anonymous.page.url.startswith(example.url("/admin/login/"))
        expect(anonymous.page.locator("#status")).to_have_count(0)
        anonymous.screenshot("dashboard-anonymous")
        alice.page.goto(example.url("/ws-api/dashboard/"))
        assert alice.page.url.startswith(example.url("/admin/login/"))
        expect(alice.page.locator("#status")).to_have_count(0)
        alice.page.goto(example.url("/"))
        expect(alice.page.locator("header nav a")).to_have_text(["Home", "Echo", "Chat", "Progress"])
    finally:
        anonymous.close()
        alice.close()
