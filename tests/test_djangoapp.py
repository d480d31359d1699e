"""Django served by Tornado: views in a thread pool, the ORM in event functions, users from sessions."""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import Any

import pytest
import tornado.httpclient
from django.contrib.auth.models import User

import tests.djangotestapp.websockets
from tornado_websockets.testing import TestServer, serve

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def discovered() -> None:
    """The autodiscovered module again: the suite's clean_wrapper fixture forgot its WebSocket."""
    importlib.reload(tests.djangotestapp.websockets)


async def fetch(server: TestServer, path: str, **kwargs: Any) -> tornado.httpclient.HTTPResponse:
    return await tornado.httpclient.AsyncHTTPClient().fetch(server.http_url(path), **kwargs)


async def test_django_views_and_websockets_share_the_port() -> None:
    async with serve(django=True) as server, server.connect("/discovered") as client:
        assert (await fetch(server, "/hello/")).body == b"hello from django"
        await client.emit("echo", {"a": 1})
        assert await client.wait_for("echo") == {"a": 1}
        with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
            await fetch(server, "/missing/")
        assert caught.value.code == 404


async def test_a_slow_view_does_not_delay_websocket_traffic() -> None:
    async with serve(django=True) as server, server.connect("/discovered") as client:
        slow = asyncio.ensure_future(fetch(server, "/slow/", request_timeout=10))
        await asyncio.sleep(0.2)  # the view is now sleeping in its thread
        started = time.monotonic()
        await client.emit("echo", {"during": "slow view"})
        assert await client.wait_for("echo") == {"during": "slow view"}
        round_trip = time.monotonic() - started
        assert not slow.done()
        assert (await slow).body == b"slow"
    # The issue asks for this proof: with views on the loop the round trip would take ~1.8 s.
    assert round_trip < 1.0, round_trip


async def test_orm_in_a_sync_event_function_and_the_anonymous_user() -> None:
    await asyncio.to_thread(User.objects.create_user, "existing")
    async with serve(django=True) as server, server.connect("/discovered") as client:
        assert await client.request("whoami") == {"authenticated": False, "username": "", "users": 1}
        new_pk = await client.request("create_user", {"username": "made-by-a-socket"})
    made = await asyncio.to_thread(User.objects.get, pk=new_pk)
    assert made.username == "made-by-a-socket"


async def test_socket_user_comes_from_the_session_cookie() -> None:
    await asyncio.to_thread(User.objects.create_user, "ann", password="secret")
    async with serve(django=True) as server:
        response = await fetch(server, "/login/?u=ann&p=secret")
        cookie = response.headers["Set-Cookie"].split(";")[0]
        async with server.connect("/discovered", headers={"Cookie": cookie}) as client:
            me = await client.request("whoami")
        assert me["authenticated"] is True
        assert me["username"] == "ann"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:{port}", True),  # the page's own origin
        ("http://localhost:9999", True),  # ALLOWED_HOSTS
        ("https://www.example.test", True),  # ALLOWED_HOSTS pattern .example.test
        ("https://app.trusted.test", True),  # CSRF_TRUSTED_ORIGINS https://*.trusted.test
        ("https://evil.test", False),
        ("null", False),
        ("http://example.test.evil.com", False),
    ],
)
async def test_origin_policy(origin: str, allowed: bool) -> None:
    async with serve(django=True) as server:
        headers = {"Origin": origin.format(port=server.port)}
        if allowed:
            async with server.connect("/discovered", headers=headers):
                pass
        else:
            with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
                await server.connect("/discovered", headers=headers)
            assert caught.value.code == 403
