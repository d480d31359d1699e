"""The event explorer in real headless Chromium, on the example project served by ``runtornado``.

The page reads the project's AsyncAPI document, connects to the chat with the library's own client
(logged in as the demo user: the chat refuses anonymous clients), sends from the generated form
and from raw JSON, and logs the frames. A last test serves a WebSocket of its own (route variables,
every simple field type) with Django from a server thread. Screenshots land in ``tests/artifacts/``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from django.test import override_settings
from playwright.sync_api import Browser, expect

from tests import explorer_urls
from tests.browser import RunTornado, ServerThread, Tab
from tornado_websockets import djangoapp
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


@pytest.fixture
def tab(browser: Browser, example: RunTornado) -> Iterator[Tab]:
    """The explorer, opened by the signed-in demo user once it has read the document."""
    tab = Tab.open(browser)
    page = tab.page
    page.goto(example.url("/accounts/login/"))
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(example.url("/"))
    page.goto(example.url("/ws-api/explorer/"))
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    yield tab
    tab.close()
    assert tab.errors == []


def connect_to_chat(tab: Tab) -> None:
    page = tab.page
    page.select_option("#path-select", label="/ws/chat")
    page.click("#connect")
    expect(page.locator("#status")).to_have_text("connected")
    page.select_option("#event-select", label="message")


def test_lists_every_path_and_event_of_the_example_project(tab: Tab) -> None:
    catalogue = tab.page.locator("#catalogue")
    expect(catalogue.locator(".channel h3")).to_have_text(["/ws/chat", "/ws/echo", "/ws/progress"])
    library = ["ack", "error", "pong", "warning"]  # every path sends them

    def sent(*events: str) -> list[str]:
        return [f"server → client{event}" for event in sorted([*events, *library])]

    # Presence (joined, left), recovery (stream, resync) and the chat's own online: all declared.
    expect(catalogue.locator("[data-channel=chat] .event summary")).to_have_text(
        ["client → servermessage", *sent("joined", "left", "message", "online", "resync", "stream")]
    )
    expect(catalogue.locator("[data-channel=echo] .event summary")).to_have_text(
        ["client → serverecho", *sent("echo")]
    )
    bar = "module_progressbar_demo_"
    expect(catalogue.locator("[data-channel=progress] .event summary")).to_have_text(
        ["client → serverstart", *sent(bar + "done", bar + "init", bar + "update")]
    )
    incoming = catalogue.locator("[data-channel=chat] .event").first
    incoming.locator("summary").click()
    schema = json.loads(incoming.locator("pre").inner_text())  # references resolved for reading
    assert schema["properties"]["message"]["maxLength"] == 500
    assert schema["required"] == ["message"]
    expect(incoming.locator(".description")).to_contain_text("Post a message")
    # The docstring's reST ``message`` is shown as code, not as raw markup.
    expect(incoming.locator(".description")).not_to_contain_text("``")
    expect(incoming.locator(".description code").first).to_have_text("message")
    tab.screenshot("explorer-catalogue")


def test_fits_a_phone_and_links_back_to_the_site(tab: Tab, example: RunTornado) -> None:
    page = tab.page
    connect_to_chat(tab)
    page.fill("#field-message", "hello")
    page.click("#send")
    expect(page.locator("#frame-log li.in[data-event=message]")).to_have_count(1)
    page.locator("[data-channel=chat] .event").first.locator("summary").click()
    tab.check_widths("explorer")
    page.set_viewport_size({"width": 390, "height": 844})
    # One column: the workbench is as wide as the catalogue, not squeezed beside it.
    catalogue, workbench = (
        page.locator("#catalogue").bounding_box(),
        page.locator("#workbench").bounding_box(),
    )
    assert catalogue is not None
    assert workbench is not None
    assert workbench["width"] == catalogue["width"] > 300
    page.click("#home")
    page.wait_for_url(example.url("/"))


def test_a_refused_connection_says_why_and_what_to_do(browser: Browser, example: RunTornado) -> None:
    tab = Tab.open(browser, example.url("/ws-api/explorer/"))  # not signed in: the chat's guard refuses
    page = tab.page
    try:
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.select_option("#path-select", label="/ws/chat")
        page.click("#connect")
        expect(page.locator("#status")).to_have_text("refused")
        expect(page.locator("#refused")).to_be_visible()
        expect(page.locator("#refused")).to_contain_text("sign in on the site")
        tab.check_widths("explorer-refused")
    finally:
        tab.close()
    assert tab.errors == []


def test_sending_a_chat_message_from_the_form_shows_the_broadcast_frame(tab: Tab) -> None:
    page = tab.page
    connect_to_chat(tab)
    expect(page.locator("#payload-fields .hint")).to_have_text(
        ["string, min length 1, max length 500, required"]
    )
    page.fill("#field-message", "hello from the explorer <b>not bold</b>")
    page.click("#send")
    log = page.locator("#frame-log")
    sent = log.locator("li.out")
    expect(sent).to_have_count(1)
    assert json.loads(sent.inner_text().split("→", 1)[1]) == {
        "event": "message",
        "data": {"message": "hello from the explorer <b>not bold</b>"},
    }
    received = log.locator("li.in[data-event=message]")
    expect(received).to_have_count(1)
    frame = json.loads(received.inner_text().split("←", 1)[1])
    assert frame["data"] == {"username": "demo", "message": "hello from the explorer <b>not bold</b>"}
    assert received.locator("b").count() == 0  # the text was written as text, never parsed as HTML
    assert received.locator("time").get_attribute("datetime")
    tab.screenshot("explorer-chat-sent")


def test_an_invalid_payload_shows_the_validation_warning(tab: Tab) -> None:
    page = tab.page
    connect_to_chat(tab)
    page.check("#raw-mode")
    expect(page.locator("#raw-json")).to_have_value('{\n  "message": ""\n}')  # the form's data so far
    page.fill("#raw-json", '{"message": 42}')
    page.click("#send")
    warning = page.locator("#frame-log li.warning")
    expect(warning).to_have_count(1)
    frame = json.loads(warning.inner_text().split("←", 1)[1])
    assert frame["event"] == "warning"
    assert frame["data"]["event"] == "message"
    assert frame["data"]["path"] == "data.message"
    assert frame["data"]["message"].startswith("data.message: expected str")
    expect(page.locator("#frame-log li.in[data-event=message]")).to_have_count(0)  # nobody got it
    page.fill("#raw-json", "{not json")
    page.click("#send")
    expect(page.locator("#send-error")).to_contain_text("Not JSON")
    tab.screenshot("explorer-chat-warning")


# Route variables and every simple field type, on a WebSocket of the test, served with Django --------


@dataclasses.dataclass
class Move:
    x: int
    speed: float
    fast: bool
    piece: Literal["pawn", "rook"]
    note: str | None = None


@pytest.fixture
def board() -> Iterator[ServerThread]:
    """``/board/<room>`` with a typed ``move``, and Django (this project's URLs) from a server thread."""
    ws = WebSocket("/board/<room>")

    @ws.on
    async def move(socket: WebSocketHandler, data: Move) -> int:
        """Move a piece; the reply is the square it lands on."""
        ws.emit("moved", {"room": socket.path_params["room"], **dataclasses.asdict(data)})
        return data.x * 8

    # The views run in this process, under the test's settings: no sessions, the explorer's URLs.
    with override_settings(
        ROOT_URLCONF=explorer_urls.__name__, TEMPLATES=explorer_urls.TEMPLATES, MIDDLEWARE=[], DEBUG=True
    ):
        thread = ServerThread([djangoapp.django_app(threads=2)])
        thread.start()
        yield thread
        thread.close()


def test_route_variables_and_typed_fields_from_the_form(browser: Browser, board: ServerThread) -> None:
    tab = Tab.open(browser, board.url("/ws-api/explorer/"))
    page = tab.page
    try:
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.select_option("#path-select", label="/ws/board/{room}")
        page.fill("#param-room", "lobby-1")
        page.click("#connect")
        expect(page.locator("#status")).to_have_text("connected")
        expect(page.locator("#frame-log li.info").nth(1)).to_have_text(
            re.compile(r"connected to /board/lobby-1$")
        )
        page.select_option("#event-select", label="move")
        page.fill("#field-x", "3")
        page.fill("#field-speed", "1.5")
        page.check("#field-fast")
        page.select_option("#field-piece", label='"rook"')
        page.check("#as-request")
        page.click("#send")
        moved = page.locator("#frame-log li.in[data-event=moved]")
        expect(moved).to_have_count(1)
        assert json.loads(moved.inner_text().split("←", 1)[1])["data"] == {
            "room": "lobby-1",
            "x": 3,
            "speed": 1.5,
            "fast": True,
            "piece": "rook",
            "note": None,  # left empty: left out, and the dataclass's default applies
        }
        ack = page.locator("#frame-log li.in[data-event=ack]")
        expect(ack).to_have_count(1)
        reply = json.loads(ack.inner_text().split("←", 1)[1])
        request = json.loads(page.locator("#frame-log li.out").first.inner_text().split("→", 1)[1])
        assert (reply["data"], reply["id"]) == (24, request["id"])  # the log shows the frames as sent
        page.fill("#field-x", "three")  # sent as typed: the server says what is wrong
        page.uncheck("#as-request")
        page.click("#send")
        warning = page.locator("#frame-log li.warning")
        expect(warning).to_have_count(1)
        assert json.loads(warning.inner_text().split("←", 1)[1])["data"]["path"] == "data.x"
        tab.screenshot("explorer-route-and-fields")
    finally:
        tab.close()
    assert tab.errors == []


# A bytes field: a file chosen in the form, sent as bytes -----------------------------------------------


@dataclasses.dataclass
class Attachment:
    name: str
    content: bytes


@pytest.fixture
def mailbox() -> Iterator[ServerThread]:
    """``/mail`` whose typed ``attach`` takes a file as bytes, and Django from a server thread."""
    ws = WebSocket("/mail")

    @ws.on
    async def attach(data: Attachment) -> dict[str, Any]:
        """Attach a file; the reply is its size and first bytes."""
        return {"name": data.name, "size": len(data.content), "head": data.content[:4].decode()}

    with override_settings(
        ROOT_URLCONF=explorer_urls.__name__, TEMPLATES=explorer_urls.TEMPLATES, MIDDLEWARE=[], DEBUG=True
    ):
        thread = ServerThread([djangoapp.django_app(threads=2)])
        thread.start()
        yield thread
        thread.close()


def test_a_file_goes_to_a_bytes_field_as_bytes(
    browser: Browser, mailbox: ServerThread, tmp_path: Path
) -> None:
    upload = tmp_path / "note.txt"
    upload.write_bytes(b"PK\x03\x04 and then some")
    tab = Tab.open(browser, mailbox.url("/ws-api/explorer/"))
    page = tab.page
    try:
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.select_option("#path-select", label="/ws/mail")
        page.click("#connect")
        expect(page.locator("#status")).to_have_text("connected")
        page.select_option("#event-select", label="attach")
        assert page.get_attribute("#field-content", "type") == "file"
        page.fill("#field-name", "note.txt")
        page.set_input_files("#field-content", str(upload))
        page.check("#as-request")
        page.click("#send")
        expect(page.locator("#frame-log li.out").first).to_contain_text("MessagePack binary frame")
        ack = page.locator("#frame-log li.in[data-event=ack]")
        expect(ack).to_have_count(1)
        reply = json.loads(ack.inner_text().split("←", 1)[1])
        assert reply["data"] == {"name": "note.txt", "size": upload.stat().st_size, "head": "PK\x03\x04"}
    finally:
        tab.close()
    assert tab.errors == []
