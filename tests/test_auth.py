"""socket.user, socket.session and socket.user_id, loaded from the upgrade request's session cookie."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest
import tornado.httpclient
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.sessions.backends.db import SessionStore

import tests.djangotestapp.websockets
from tornado_websockets.auth import load_user_sync
from tornado_websockets.testing import TestServer, serve

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def discovered() -> None:
    """The autodiscovered module again: the suite's clean_wrapper fixture forgot its WebSocket."""
    importlib.reload(tests.djangotestapp.websockets)


async def log_in(server: TestServer, username: str, password: str) -> str:
    """Log in through a Django view; the session cookie, as a browser would send it."""
    url = server.http_url(f"/login/?u={username}&p={password}")
    response = await tornado.httpclient.AsyncHTTPClient().fetch(url)
    return response.headers["Set-Cookie"].split(";")[0]


async def whoami(server: TestServer, cookie: str | None = None) -> dict[str, Any]:
    headers = {"Cookie": cookie} if cookie else None
    async with server.connect("/discovered", headers=headers) as client:
        answer: dict[str, Any] = await client.request("whoami")
    return answer


async def test_a_logged_in_client_gets_its_user_and_session() -> None:
    ann = await asyncio.to_thread(User.objects.create_user, "ann", password="secret")
    async with serve(django=True) as server:
        cookie = await log_in(server, "ann", "secret")
        me = await whoami(server, cookie)
    assert me["authenticated"] is True
    assert (me["username"], me["user_id"]) == ("ann", ann.pk)
    assert f"sessionid={me['session_key']}" == cookie


async def test_a_client_without_a_session_is_anonymous() -> None:
    async with serve(django=True) as server:
        me = await whoami(server)
    assert me == {"authenticated": False, "username": "", "user_id": None, "session_key": None, "users": 0}


async def test_an_unknown_session_key_is_anonymous() -> None:
    async with serve(django=True) as server:
        me = await whoami(server, "sessionid=forgedforgedforgedforgedforged12")
    assert (me["authenticated"], me["user_id"]) == (False, None)


async def test_a_logged_out_session_is_anonymous_again() -> None:
    await asyncio.to_thread(User.objects.create_user, "bob", password="secret")
    async with serve(django=True) as server:
        cookie = await log_in(server, "bob", "secret")
        await asyncio.to_thread(SessionStore(cookie.split("=", 1)[1]).delete)
        me = await whoami(server, cookie)
    assert me["authenticated"] is False


def test_load_user_sync_without_a_key() -> None:
    session, user = load_user_sync(None)
    assert isinstance(user, AnonymousUser)
    assert session.session_key is None
