"""testing.serve(django=True) with signed-in sockets: server.connect(path, user=...) and session_cookie."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

import tests.djangotestapp.websockets
from tests.nested_pytest import run_pytest
from tornado_websockets.testing import serve, session_cookie


@pytest.fixture(autouse=True)
def discovered() -> None:
    """The autodiscovered module again: the suite's clean_wrapper fixture forgot its WebSocket."""
    importlib.reload(tests.djangotestapp.websockets)


@pytest.fixture
def ann(transactional_db: None) -> User:
    return User.objects.create_user("ann", password="secret")


@pytest.mark.django_db(transaction=True)
async def test_connect_as_a_user(ann: User) -> None:
    async with serve(django=True) as server, server.connect("/discovered", user=ann) as client:
        answer = await client.request("whoami")
    assert answer["authenticated"] is True
    assert answer["username"] == "ann"
    assert answer["user_id"] == ann.pk


@pytest.fixture
def browser(ann: User) -> Client:
    browser = Client()
    assert browser.login(username="ann", password="secret")
    return browser


@pytest.mark.django_db(transaction=True)
async def test_connect_with_a_test_clients_session(browser: Client) -> None:
    key = browser.cookies["sessionid"].value
    async with serve(django=True) as server, server.connect("/discovered", user=browser) as client:
        answer = await client.request("whoami")
    assert answer["username"] == "ann"
    assert answer["session_key"] == key  # the client's own session: one browser


async def test_a_client_that_never_signed_in_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="force_login"):
        await session_cookie(Client())


async def test_no_database_mark_is_needed_to_connect_anonymously() -> None:
    async with serve(django=True) as server, server.connect("/discovered") as client:
        assert (await client.request("echo", {"a": 1})) is None


ORDER_SETTINGS = """
from tests.django_settings import *  # noqa: F403

# As a fresh startproject: a file database, so pytest-django tests on SQLite in memory, whose
# connections Django never closes; one worker thread, so the second test meets the first's.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
TORNADO = {"threads": 1}
"""

ORDER_TESTS = """
import pytest
from django.contrib.auth.models import User
from tornado_websockets import WebSocket, serve

ws = WebSocket("/plain")

@ws.on
def count(socket):
    return User.objects.count()

@ws.on
def ping(socket):
    return "pong"

@pytest.mark.django_db(transaction=True)
async def test_a_def_function_uses_the_database():
    async with serve(django=True) as server, server.connect("/plain") as client:
        assert await client.request("count") == 0

async def test_a_def_function_without_the_database_needs_no_mark():
    async with serve(django=True) as server, server.connect("/plain") as client:
        assert await client.request("ping") == "pong"
"""


def test_no_database_mark_is_needed_after_a_transactional_test_left_a_connection(tmp_path: Path) -> None:
    """pytest-django runs transactional tests first; a worker thread keeps their in-memory connection."""
    (tmp_path / "order_settings.py").write_text(ORDER_SETTINGS)
    (tmp_path / "test_order.py").write_text(ORDER_TESTS)
    done = run_pytest(tmp_path, "test_order.py", "order_settings")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" PASSED") == 2, done.stdout
