"""testing.serve(django=True) with signed-in sockets: server.connect(path, user=...) and session_cookie."""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth.models import User
from django.test import Client

import tests.djangotestapp.websockets
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
