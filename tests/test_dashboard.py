"""The metrics views, the dashboard page and its WebSocket: who may see them, and what they serve.

Views go through Django's test client and the package's URLs as a project includes them
(``tests/explorer_urls.py``); the WebSocket is served by a real server (``serve(django=True)``)
and reached by real clients carrying a real session cookie.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

import tornado_websockets
from tests import explorer_urls
from tests.polling import wait_until
from tornado_websockets import asyncapi, dashboard
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF=explorer_urls.__name__, TEMPLATES=explorer_urls.TEMPLATES):
        yield


def client_as(username: str | None, *, staff: bool = False, active: bool = True) -> Client:
    """A test client logged in as a new user (anonymous for None)."""
    client = Client()
    if username is not None:
        user = User.objects.create_user(username, password="pw", is_staff=staff, is_active=active)
        client.force_login(user)
    return client


def register_echo() -> WebSocket:
    echo = WebSocket("/echo")

    @echo.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("said", data)

    return echo


# Access rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("debug", "setting", "who", "expected"),
    [
        (True, None, "anonymous", 200),  # in development: websocket_stats --url works without a login
        (False, None, "anonymous", 404),
        (False, None, "user", 404),
        (False, None, "inactive staff", 404),
        (False, None, "staff", 200),
        (False, True, "anonymous", 200),  # a Prometheus scraper
        (True, False, "staff", 404),
    ],
)
def test_who_may_read_the_metrics(debug: bool, setting: bool | None, who: str, expected: int) -> None:
    client = {
        "anonymous": lambda: client_as(None),
        "user": lambda: client_as("ann"),
        "inactive staff": lambda: client_as("old", staff=True, active=False),
        "staff": lambda: client_as("boss", staff=True),
    }[who]()
    with override_settings(DEBUG=debug, TORNADO={"metrics": setting}):
        assert client.get("/ws-api/metrics.json").status_code == expected
        assert client.get("/ws-api/metrics").status_code == expected


@pytest.mark.parametrize(
    ("setting", "who", "expected"),
    [
        (None, "anonymous", 302),  # to the login page, not a DEBUG 404 page
        (None, "user", 302),
        (None, "staff", 200),
        (True, "user", 302),
        (False, "staff", 404),
        (False, "anonymous", 404),
    ],
)
def test_the_dashboard_is_for_staff_only_even_in_debug(setting: bool | None, who: str, expected: int) -> None:
    client = client_as(None if who == "anonymous" else who, staff=who == "staff")
    with override_settings(DEBUG=True, TORNADO={"metrics": setting}):
        response = client.get("/ws-api/dashboard/")
    assert response.status_code == expected
    if expected == 302:
        assert response["Location"] == "/accounts/login/?next=/ws-api/dashboard/"


def test_without_prometheus_client_the_metrics_answer_501_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The test environment has the extra installed: hiding the module is the only way to be without it.
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "tornado_websockets.prometheus", raising=False)
    monkeypatch.delattr(tornado_websockets, "prometheus", raising=False)
    with override_settings(DEBUG=True, TORNADO={"metrics": None}):
        response = client_as(None).get("/ws-api/metrics")
    assert response.status_code == 501
    assert len(response.content) < 300
    assert b"pip install 'django-tornado-websockets[metrics]'" in response.content


# What they serve ---------------------------------------------------------------------------------


@override_settings(DEBUG=True)
def test_metrics_json_is_the_snapshot_of_this_process() -> None:
    register_echo()
    data = client_as(None).get("/ws-api/metrics.json").json()
    assert data["paths"]["/echo"]["connections"] == 0
    assert data["backplane"] == {"kind": "Broker", "state": "local"}


async def test_the_prometheus_text_parses_and_counts_a_live_connection() -> None:
    register_echo()
    async with serve(django=True) as server, server.connect("/echo") as client:
        await client.emit("say", {"n": 1})
        await client.wait_for("said")
        response = await asyncio.to_thread(_get, "/ws-api/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {
        (sample.name, sample.labels.get("path")): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }
    assert samples[("tws_open_connections", "/echo")] == 1
    assert samples[("tws_frames_received_total", "/echo")] == 1
    assert samples[("tws_frames_sent_total", "/echo")] == 1


def _get(url: str) -> Any:
    with override_settings(DEBUG=True):
        return Client().get(url)


def test_the_page_registers_its_websocket_and_says_where_it_is() -> None:
    assert dashboard.DASHBOARD_PATH not in TornadoWrapper.websockets
    response = client_as("boss", staff=True).get("/ws-api/dashboard/")
    page = response.content.decode()
    config = page.split('<script id="dashboard-config" type="application/json">')[1].split("</script>")[0]
    assert json.loads(config) == {"path": "/tws-dashboard", "client": "/static/tornado_websockets/client.js"}
    assert dashboard.DASHBOARD_PATH in TornadoWrapper.websockets
    assert dashboard.register() is TornadoWrapper.websockets[dashboard.DASHBOARD_PATH]  # idempotent
    assert "tws-dashboard" not in json.dumps(asyncapi.document())  # not part of the project's API


# The dashboard's WebSocket -----------------------------------------------------------------------


def session_cookie(username: str | None, staff: bool = False) -> dict[str, str] | None:
    """The Cookie header of a logged-in user (None for anonymous)."""
    if username is None:
        return None
    client = client_as(username, staff=staff)
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}


@pytest.mark.parametrize(("username", "staff"), [(None, False), ("ann", False)])
async def test_the_websocket_refuses_non_staff_with_403(username: str | None, staff: bool) -> None:
    dashboard.register()
    headers = await asyncio.to_thread(session_cookie, username, staff)
    async with serve(django=True) as server:
        with pytest.raises(Exception, match="403"):
            await server.connect(dashboard.DASHBOARD_PATH, headers=headers)


async def test_staff_get_a_snapshot_at_once_then_every_second_until_the_last_leaves() -> None:
    register_echo()
    websocket = dashboard.register()
    headers = await asyncio.to_thread(session_cookie, "boss", True)
    async with serve(django=True) as server:
        async with server.connect(dashboard.DASHBOARD_PATH, headers=headers) as staff:
            first = await staff.wait_for("metrics")
            assert first["paths"]["/echo"]["connections"] == 0
            async with server.connect("/echo"):
                # A periodic push (not the one sent on open) shows the new connection.
                second = first
                while second["paths"]["/echo"]["connections"] == 0:
                    second = await staff.wait_for("metrics", timeout=5)
                assert second["process"]["time"] > first["process"]["time"]
                assert second["paths"]["/tws-dashboard"]["connections"] == 1
            assert websocket.state.pusher.callback is not None
        await wait_until(lambda: websocket.state.pusher.callback is None)
