"""The AsyncAPI document and explorer views: who may see them, and what they serve.

Requests go through Django's test client and the URLs of `tornado_websockets.urls`, included by
``tests/explorer_urls.py`` as a project would; the page itself is driven in Chromium by
``tests/test_explorer_browser.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

import jsonschema
import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.http import Http404
from django.test import Client, RequestFactory, override_settings

from tests import explorer_urls
from tornado_websockets import explorer
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

SCHEMA = json.loads((Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json").read_text())

# No session or auth middleware: the anonymous cases need none, the staff ones set request.user.
pytestmark = pytest.mark.usefixtures("urls")


@pytest.fixture
def urls() -> Any:
    with override_settings(
        ROOT_URLCONF=explorer_urls.__name__, TEMPLATES=explorer_urls.TEMPLATES, MIDDLEWARE=[]
    ):
        yield


class Note(TypedDict):
    text: str
    pinned: bool


def register() -> WebSocket:
    notes = WebSocket("/notes/<board>")

    @notes.on
    async def add(socket: WebSocketHandler, data: Note) -> None:
        """Pin a note on the board."""

    notes.emits("added", Note, "A note was added.")
    return notes


def get(url: str) -> Any:
    return Client().get(url)


@override_settings(DEBUG=True)
def test_in_debug_the_document_is_served_and_valid_asyncapi_3() -> None:
    register()
    response = get("/ws-api/asyncapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    document = response.json()
    jsonschema.validate(document, SCHEMA)
    assert document["channels"]["notes_board"]["address"] == "/ws/notes/{board}"
    library = {f"notes_board.send.{event}" for event in ("warning", "error", "ack", "pong")}
    assert set(document["operations"]) == {"notes_board.receive.add", "notes_board.send.added", *library}
    assert document["components"]["schemas"]["Note"]["required"] == ["pinned", "text"]


@override_settings(DEBUG=True)
def test_in_debug_the_page_is_served_with_where_to_find_the_document_and_client() -> None:
    response = get("/ws-api/explorer/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<script type="module" src="/static/tornado_websockets/explorer/explorer.mjs">' in page
    config = page.split('<script id="explorer-config" type="application/json">')[1].split("</script>")[0]
    assert json.loads(config) == {
        "schema": "/ws-api/asyncapi.json",
        "client": "/static/tornado_websockets/client.mjs",
        "binary": True,  # msgspec is installed: a bytes field sends its file as bytes
    }


@pytest.mark.parametrize("url", ["/ws-api/asyncapi.json", "/ws-api/explorer/"])
@pytest.mark.parametrize(
    ("debug", "setting", "status"),
    [
        (True, {}, 200),
        (True, {"explorer": True}, 200),
        (True, {"explorer": False}, 404),  # False turns it off even in DEBUG
        (False, {}, 404),  # off outside DEBUG by default...
        (False, {"explorer": True}, 404),  # ...and, when turned on, never for anonymous users
    ],
)
def test_who_may_see_it_anonymously(url: str, debug: bool, setting: dict[str, Any], status: int) -> None:
    with override_settings(DEBUG=debug, TORNADO=setting):
        assert get(url).status_code == status


def user(**flags: bool) -> User:
    return User(username="someone", **flags)  # never saved: the views read only its flags


@pytest.mark.parametrize(
    ("setting", "who", "allowed"),
    [
        ({"explorer": True}, user(is_staff=True), True),
        ({"explorer": True}, user(is_staff=True, is_active=False), False),
        ({"explorer": True}, user(), False),  # signed in, but not staff
        ({"explorer": True}, AnonymousUser(), False),
        ({}, user(is_staff=True, is_superuser=True), False),  # the setting is needed outside DEBUG
        ({"explorer": False}, user(is_staff=True), False),
    ],
)
@override_settings(DEBUG=False)
def test_outside_debug_only_staff_when_the_setting_says_so(
    setting: dict[str, Any], who: Any, allowed: bool
) -> None:
    request = RequestFactory().get("/ws-api/asyncapi.json")
    request.user = who
    with override_settings(TORNADO=setting):
        assert explorer.explorer_allowed(request) is allowed
        if allowed:
            assert explorer.asyncapi_json(request).status_code == 200
            assert b"explorer.mjs" in explorer.explorer(request).content
        else:
            with pytest.raises(Http404):
                explorer.asyncapi_json(request)
            with pytest.raises(Http404):
                explorer.explorer(request)


@override_settings(DEBUG=False, TORNADO={"explorer": True})
def test_without_the_authentication_middleware_nobody_is_staff() -> None:
    request = RequestFactory().get("/ws-api/explorer/")  # no request.user at all
    assert explorer.explorer_allowed(request) is False
