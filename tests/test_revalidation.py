"""A session's end reaches its sockets however it ends, without Redis and with it.

Real ``runtornado`` processes of ``tests.servingapp`` with a short ``session_check_interval``;
the session ends in another process (``manage.py``), or in the server without a signal, and the
socket must close with 4001. How long each took is printed (``-s``), never asserted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.redis_server import RedisServer
from tests.servers import ROOT
from tests.serving import Served, manage, migrated, runtornado
from tests.test_sessions import get, log_in, socket
from tornado_websockets import sessions
from tornado_websockets.limits import SESSION_ENDED_CLOSE_CODE
from tornado_websockets.testing import WebSocketTestClient

#: Seconds between re-validations in these servers (the default is 30).
INTERVAL = "0.5"
#: A generous wait for the close: many intervals on a busy machine.
WAIT = 30.0
USERS = ("carl", "dora", "emil", "fay", "gus", "hana", "ivo", "jan", "kim")


@dataclass
class Site:
    served: Served
    env: dict[str, str]
    mode: str


def _site(tmp: Path, mode: str, **extra: str) -> Iterator[Site]:
    env = {**migrated(tmp / "db.sqlite3"), "SERVING_SESSION_CHECK": INTERVAL, **extra}
    script = "from django.contrib.auth.models import User\n" + "".join(
        f"User.objects.create_user({name!r}, password={name!r})\n" for name in USERS
    )
    manage(env, "shell", "-c", script)
    with runtornado(env) as served:
        yield Site(served, env, mode)


@pytest.fixture(scope="module", params=["no-backplane", "redis"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "redis":
        with RedisServer.running(tmp) as redis_server:
            yield from _site(tmp, request.param, SERVING_BACKPLANE=redis_server.url)
    else:
        yield from _site(tmp, request.param)


async def closes_with_4001(client: WebSocketTestClient, since: float, what: str, site: Site) -> None:
    code = await client.wait_closed(WAIT)
    print(  # noqa: T201 - the figure the issue asks to report
        f"\n[{site.mode}] {what}: socket closed with {code} {time.monotonic() - since:.2f} s later"
    )
    assert code == SESSION_ENDED_CLOSE_CODE
    assert client.connection.close_reason == sessions.CLOSE_REASON


def shell(site: Site, script: str) -> None:
    manage(site.env, "shell", "-c", "from django.contrib.auth.models import User\n" + script)


async def test_changepassword_in_another_process(site: Site) -> None:
    key = await log_in(site.served, "carl")
    client, watcher = (
        await socket(site.served, key),
        await socket(site.served, await log_in(site.served, "ann")),
    )
    assert await client.request("whoami") == "carl"
    # manage.py changepassword, typed at its prompts (getpass reads stdin without a terminal).
    done = subprocess.run(
        [sys.executable, "-m", "django", "changepassword", "carl"],
        cwd=ROOT,
        env=site.env,
        input="a-new-Passw0rd\na-new-Passw0rd\n",
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,  # no terminal: getpass falls back to stdin
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    await closes_with_4001(client, time.monotonic(), "changepassword in another process", site)
    assert await watcher.request("whoami") == "ann"  # another user's socket is not touched
    watcher.close()


async def test_expiry(site: Site) -> None:
    client = await socket(site.served, await log_in(site.served, "dora", "dora&expiry=2"))
    assert await client.request("whoami") == "dora"
    await closes_with_4001(client, time.monotonic(), "expiry after 2 s", site)


async def test_clearsessions_after_expiry(site: Site) -> None:
    key = await log_in(site.served, "emil")
    client = await socket(site.served, key)
    assert await client.request("whoami") == "emil"
    since = time.monotonic()
    script = (
        "from datetime import timedelta\nfrom django.utils import timezone\n"
        "from django.contrib.sessions.models import Session\n"
        f"Session.objects.filter(session_key={key!r}).update(expire_date=timezone.now() - timedelta(1))\n"
    )
    shell(site, script)
    manage(site.env, "clearsessions")
    await closes_with_4001(client, since, "expired then clearsessions", site)


async def test_flush_without_logout(site: Site) -> None:
    key = await log_in(site.served, "fay")
    client = await socket(site.served, key)
    assert await client.request("whoami") == "fay"
    since = time.monotonic()
    assert await get(site.served, "/flush/", key) == b"flushed"
    await closes_with_4001(client, since, "session.flush() without logout", site)


async def test_user_deleted_in_another_process(site: Site) -> None:
    client = await socket(site.served, await log_in(site.served, "gus"))
    assert await client.request("whoami") == "gus"
    since = time.monotonic()
    shell(site, "User.objects.get(username='gus').delete()")
    await closes_with_4001(client, since, "user deleted in another process", site)


async def test_user_made_inactive_in_another_process(site: Site) -> None:
    client = await socket(site.served, await log_in(site.served, "hana"))
    assert await client.request("whoami") == "hana"
    since = time.monotonic()
    shell(site, "User.objects.filter(username='hana').update(is_active=False)")  # no signal at all
    await closes_with_4001(client, since, "is_active=False (queryset update) in another process", site)


async def test_inactive_by_save_in_another_process(site: Site) -> None:
    client = await socket(site.served, await log_in(site.served, "ivo"))
    since = time.monotonic()
    shell(site, "u = User.objects.get(username='ivo')\nu.is_active = False\nu.save()")
    await closes_with_4001(client, since, "is_active=False (save) in another process", site)


async def test_session_row_deleted_behind_the_servers_back(site: Site) -> None:
    key = await log_in(site.served, "jan")
    client = await socket(site.served, key)
    since = time.monotonic()
    shell(
        site,
        f"from django.contrib.sessions.models import Session\nSession.objects.filter(pk={key!r}).delete()",
    )
    await closes_with_4001(client, since, "session row deleted in another process", site)


async def test_a_valid_session_keeps_its_sockets(site: Site) -> None:
    key = await log_in(site.served, "kim")
    clients = [await socket(site.served, key) for _ in range(3)]
    # Several intervals pass: every check finds the session valid, and the sockets stay.
    await asyncio.sleep(3 * float(INTERVAL))
    for client in clients:
        assert await client.request("whoami") == "kim"
        client.close()


async def test_a_cache_session_cleared_behind_the_servers_back(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    for site in _site(tmp_path, "no-backplane, cache sessions", SERVING_SESSION_CACHE=str(cache)):
        client = await socket(site.served, await log_in(site.served, "ann"))
        assert await client.request("whoami") == "ann"
        since = time.monotonic()
        manage(site.env, "shell", "-c", "from django.core.cache import cache\ncache.clear()")
        await closes_with_4001(client, since, "cache session cleared in another process", site)


@pytest.mark.django_db(transaction=True)
async def test_one_read_per_session_however_many_sockets() -> None:
    """In-process: check_now() reads each session once, and closes only the stale one's sockets."""
    import importlib

    from asgiref.sync import sync_to_async
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session
    from django.test import Client

    import tests.djangotestapp.websockets
    from tornado_websockets import revalidation
    from tornado_websockets.testing import serve

    importlib.reload(tests.djangotestapp.websockets)  # the suite's clean_wrapper forgot its WebSocket

    def sign_in(name: str) -> Client:
        browser = Client()
        browser.force_login(User.objects.create_user(name))
        return browser

    ann, bob = await sync_to_async(sign_in)("ann"), await sync_to_async(sign_in)("bob")
    async with serve(django=True) as server:
        anns = [await server.connect("/discovered", user=ann) for _ in range(3)]
        bobs = await server.connect("/discovered", user=bob)
        for client in [*anns, bobs]:
            assert (await client.request("whoami"))["authenticated"]
        assert await revalidation.check_now() == 2  # two sessions read, for four sockets
        key = ann.cookies["sessionid"].value
        await sync_to_async(Session.objects.filter(session_key=key).delete)()  # no signal
        assert await revalidation.check_now() == 2
        for client in anns:
            assert await client.wait_closed() == SESSION_ENDED_CLOSE_CODE
        assert (await bobs.request("whoami"))["username"] == "bob"
        assert await revalidation.check_now() == 1
        bobs.close()
