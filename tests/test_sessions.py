"""A session's sockets end with the session: logout and password changes, in every process.

Real ``runtornado`` processes of ``tests.servingapp``, real clients logged in through Django
views, and, for the backplane, two processes sharing a real redis-server.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
import tornado.httpclient

from tests.redis_server import RedisServer
from tests.serving import Served, manage, migrated, runtornado
from tornado_websockets import sessions
from tornado_websockets.broker import Envelope
from tornado_websockets.limits import FINAL_CLOSE_CODES, SESSION_ENDED_CLOSE_CODE
from tornado_websockets.testing import WebSocketTestClient


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return migrated(tmp_path / "db.sqlite3")


@pytest.fixture
def served(env: dict[str, str]) -> Iterator[Served]:
    with runtornado(env) as server:
        yield server


async def log_in(served: Served, username: str, password: str | None = None) -> str:
    """Log in through a view; the session key."""
    url = f"{served.base}/login/?u={username}&p={password or username}"
    response = await tornado.httpclient.AsyncHTTPClient().fetch(url)
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    return jar["sessionid"].value


async def get(served: Served, path: str, session: str) -> bytes:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        served.base + path, headers={"Cookie": f"sessionid={session}"}
    )
    return response.body


async def socket(served: Served, session: str) -> WebSocketTestClient:
    client = await WebSocketTestClient.connect(
        f"ws://127.0.0.1:{served.port}/ws/who", headers={"Cookie": f"sessionid={session}"}
    )
    return client


async def test_logging_out_closes_that_sessions_sockets_only(served: Served) -> None:
    ann_here, ann_elsewhere, bob = (
        await log_in(served, "ann"),
        await log_in(served, "ann"),
        await log_in(served, "bob"),
    )
    closing, staying, other = (
        await socket(served, ann_here),
        await socket(served, ann_elsewhere),
        await socket(served, bob),
    )
    assert await closing.request("whoami") == "ann"
    assert await get(served, "/logout/", ann_here) == b"bye"
    assert await closing.wait_closed() == SESSION_ENDED_CLOSE_CODE
    assert closing.connection.close_reason == sessions.CLOSE_REASON
    # The same user on another device, and another user, keep their sockets.
    assert await staying.request("whoami") == "ann"
    assert await other.request("whoami") == "bob"
    staying.close()
    other.close()


async def test_a_password_change_closes_the_users_other_sessions(served: Served) -> None:
    changing, other_device, bob = (
        await log_in(served, "ann"),
        await log_in(served, "ann"),
        await log_in(served, "bob"),
    )
    other_socket, bob_socket = await socket(served, other_device), await socket(served, bob)
    assert await get(served, "/password/?new=fresh", changing) == b"changed"
    assert await other_socket.wait_closed() == SESSION_ENDED_CLOSE_CODE
    assert await bob_socket.request("whoami") == "bob"
    # A socket opened after the change, with the new password, is not touched.
    renewed = await socket(served, await log_in(served, "ann", "fresh"))
    assert await renewed.request("whoami") == "ann"
    renewed.close()
    bob_socket.close()


async def test_a_save_that_changes_no_password_closes_nothing(served: Served, env: dict[str, str]) -> None:
    client = await socket(served, await log_in(served, "ann"))
    # login() itself saves the user (last_login): the test above would fail if any save closed.
    await log_in(served, "ann")
    manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User\nUser.objects.get(username='ann').save()",
    )
    assert await client.request("whoami") == "ann"
    client.close()


async def test_with_the_backplane_every_process_closes_its_sockets(tmp_path: Path) -> None:
    with RedisServer.running(tmp_path) as redis_server:
        env = {**migrated(tmp_path / "db.sqlite3"), "SERVING_BACKPLANE": redis_server.url}
        with runtornado(env) as first, runtornado(env) as second:
            session = await log_in(first, "ann")
            elsewhere = await socket(second, session)
            assert await elsewhere.request("whoami") == "ann"
            assert await get(first, "/logout/", session) == b"bye"
            assert await elsewhere.wait_closed() == SESSION_ENDED_CLOSE_CODE

            # A process that serves nothing (a worker, a command) changes a password.
            bob = await socket(second, await log_in(first, "bob"))
            script = "from django.contrib.auth.models import User\nu = User.objects.get(username='bob')\n"
            manage(env, "shell", "-c", script + "u.set_password('new')\nu.save()")
            assert await bob.wait_closed() == SESSION_ENDED_CLOSE_CODE
        assert "sessionid" not in first.output() + second.output()


def test_a_control_envelope_travels_as_such_and_carries_no_session_key() -> None:
    envelope = Envelope("", b'{"session":"d"}', origin="me", control=sessions.CONTROL_KIND)
    assert Envelope.unpack(envelope.pack()) == envelope
    assert sessions.digest("the-session-key") != "the-session-key"
    assert Envelope.unpack(Envelope("/p", b"{}").pack()).control is None


def test_the_session_close_code_is_final() -> None:
    assert SESSION_ENDED_CLOSE_CODE in FINAL_CLOSE_CODES
    assert 1008 in FINAL_CLOSE_CODES
    assert 1001 not in FINAL_CLOSE_CODES


async def test_changing_your_own_password_renews_your_sockets_and_signs_out_the_others(
    served: Served,
) -> None:
    """As Django's PasswordChangeView: this session stays signed in (update_session_auth_hash)."""
    changing, other_device = await log_in(served, "ann"), await log_in(served, "ann")
    tabs = [await socket(served, changing), await socket(served, changing)]
    elsewhere = await socket(served, other_device)
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        f"{served.base}/password/?new=fresh&keep=1", headers={"Cookie": f"sessionid={changing}"}
    )
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    renewed = jar["sessionid"].value
    assert renewed != changing  # Django gave the session a new key
    for tab in tabs:  # "reconnect now", not "signed out"
        assert await tab.wait_closed() == sessions.SESSION_RENEWED_CLOSE_CODE
        assert tab.connection.close_reason == sessions.RENEWED_REASON
    assert sessions.SESSION_RENEWED_CLOSE_CODE not in FINAL_CLOSE_CODES
    assert await elsewhere.wait_closed() == SESSION_ENDED_CLOSE_CODE
    # The page comes back with its new cookie, as the same user.
    again = await socket(served, renewed)
    assert await again.request("whoami") == "ann"
    again.close()
