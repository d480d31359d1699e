"""The Django example project, served by ``manage.py runtornado`` as ``make demo`` serves it.

The pages are checked over HTTP (the browser tests of the JavaScript client drive them in
Chromium); the three WebSockets are checked with real clients, logged in through Django's own
login form where the page needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import tornado.httpclient

from tests.polling import wait_until
from tests.servers import ROOT, free_port
from tornado_websockets.testing import WebSocketTestClient

EXAMPLE = ROOT / "example_project"
STARTUP_TIMEOUT = 30.0


def manage(env: dict[str, str], *arguments: str) -> str:
    """Run a management command of the example project; its output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def example_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the example project's commands: its own settings and a fresh database."""
    database = tmp_path_factory.mktemp("example") / "db.sqlite3"
    # pytest-django exported the suite's settings module: the project must use its own.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "EXAMPLE_DATABASE": str(database),
        "PYTHONPATH": str(ROOT),
    }
    manage(env, "migrate", "--noinput")
    manage(env, "seeddemo")
    return env


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the example's runtornado writes its output (stdout and stderr)."""
    return tmp_path_factory.mktemp("example-log") / "runtornado.log"


@pytest.fixture(scope="module")
def base(example_env: dict[str, str], server_log: Path) -> Iterator[str]:
    """``runtornado`` of the example project on a free port; its ``http://`` base URL."""
    port = free_port()
    with server_log.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runtornado", str(port), "--noreload"],
            cwd=EXAMPLE,
            env=example_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                pytest.fail(f"runtornado did not start:\n{server_log.read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


async def fetch(url: str, **kwargs: Any) -> tornado.httpclient.HTTPResponse:
    kwargs.setdefault("raise_error", False)
    return await tornado.httpclient.AsyncHTTPClient().fetch(url, **kwargs)


def cookies(response: tornado.httpclient.HTTPResponse) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


async def log_in(base: str, username: str, password: str) -> str:
    """Log in through Django's login form, as a browser does; the ``Cookie`` header to send."""
    form = await fetch(base + "/accounts/login/?next=/chat/")
    csrf = cookies(form)["csrftoken"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.body.decode())
    assert token is not None
    body = urlencode(
        {"csrfmiddlewaretoken": token[1], "username": username, "password": password, "next": "/chat/"}
    )
    answer = await fetch(
        base + "/accounts/login/",
        method="POST",
        body=body,
        headers={"Cookie": f"csrftoken={csrf}"},
        follow_redirects=False,
    )
    assert (answer.code, answer.headers.get("Location")) == (302, "/chat/"), answer.body
    return f"csrftoken={csrf}; sessionid={cookies(answer)['sessionid']}"


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + "/ws" + path


# The pages -------------------------------------------------------------------------------------

# The DOM ids the browser tests drive (the JavaScript client's contract with these pages).
PAGE_IDS = {
    "/echo/": ["status", "echo-form", "echo-input", "echo-log"],
    "/progress/": ["status", "progress-start", "progress", "progress-label", "progress-done"],
    "/chat/": ["status", "chat-form", "chat-input", "chat-log"],
}


@pytest.mark.parametrize("path", ["/", "/echo/", "/progress/", "/accounts/login/"])
async def test_open_pages_answer_200(base: str, path: str) -> None:
    page = await fetch(base + path)
    assert page.code == 200
    html = page.body.decode()
    for element in PAGE_IDS.get(path, []):
        assert f'id="{element}"' in html
    if path in PAGE_IDS:
        assert "/static/tornado_websockets/client.js" in html


async def test_the_home_page_links_the_three_pages(base: str) -> None:
    html = (await fetch(base + "/")).body.decode()
    for path in ("/echo/", "/chat/", "/progress/"):
        assert f'href="{path}"' in html


async def test_the_home_page_links_the_explorer_and_the_dashboard_of_the_readme(base: str) -> None:
    html = (await fetch(base + "/")).body.decode()
    assert 'href="/ws-api/explorer/"' in html
    assert 'href="/ws-api/dashboard/"' in html
    assert "``/ws-api/dashboard/``" in (ROOT / "README.rst").read_text()


async def test_the_staff_dashboard_link_is_the_page_the_readme_names(base: str) -> None:
    cookie = await log_in(base, "demo", "demo")  # staff
    html = (await fetch(base + "/", headers={"Cookie": cookie})).body.decode()
    assert '<a href="/ws-api/dashboard/">Dashboard</a>' in html
    assert (await fetch(base + "/ws-api/dashboard/", headers={"Cookie": cookie})).code == 200


async def test_the_favicon_is_served(base: str) -> None:
    icon = await fetch(base + "/favicon.ico")  # redirected to the static file
    assert (icon.code, icon.headers["Content-Type"]) == (200, "image/svg+xml")


async def test_each_request_is_logged_once_with_its_date_and_time(base: str, server_log: Path) -> None:
    missing = f"/no-such-page-{time.monotonic_ns()}/"
    assert (await fetch(base + missing)).code == 404
    found = f"/echo/?visit={time.monotonic_ns()}"
    assert (await fetch(base + found)).code == 200
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+ "
    await wait_until(lambda: found in server_log.read_text())
    logged = await asyncio.to_thread(server_log.read_text)
    lines = [line for line in logged.splitlines() if missing in line]
    assert len(lines) == 1, lines  # Tornado's access line; Django's "Not Found" is not repeated
    assert re.match(stamp + f"404 GET {missing} ", lines[0]), lines[0]
    (echo,) = [line for line in logged.splitlines() if found in line]
    assert re.match(stamp + "200 GET " + re.escape(found), echo), echo


async def test_the_chat_page_sends_anonymous_visitors_to_the_login_page(base: str) -> None:
    page = await fetch(base + "/chat/", follow_redirects=False)
    assert (page.code, page.headers["Location"]) == (302, "/accounts/login/?next=/chat/")


async def test_the_chat_page_greets_a_logged_in_user(base: str) -> None:
    cookie = await log_in(base, "alice", "alice")
    page = await fetch(base + "/chat/", headers={"Cookie": cookie})
    assert page.code == 200
    html = page.body.decode()
    assert "<strong>alice</strong>" in html
    for element in PAGE_IDS["/chat/"]:
        assert f'id="{element}"' in html


@pytest.mark.parametrize(
    "path", ["/static/tornado_websockets/client.js", "/static/tornado_websockets/modules/progressbar.js"]
)
async def test_the_client_scripts_are_served_in_debug(base: str, path: str) -> None:
    script = await fetch(base + path)
    assert script.code == 200
    assert b"TornadoWebSocket" in script.body


def test_seeding_twice_keeps_the_users(example_env: dict[str, str]) -> None:
    assert manage(example_env, "seeddemo").splitlines() == [
        "Kept user demo (password demo)",
        "Kept user alice (password alice)",
    ]


async def test_seeding_again_keeps_everyone_signed_in(base: str, example_env: dict[str, str]) -> None:
    cookie = await log_in(base, "alice", "alice")
    chat = await fetch(base + "/chat/", headers={"Cookie": cookie}, follow_redirects=False)
    assert chat.code == 200
    await asyncio.to_thread(manage, example_env, "seeddemo")  # as make demo does at each start
    again = await fetch(base + "/chat/", headers={"Cookie": cookie}, follow_redirects=False)
    assert again.code == 200, again.headers.get("Location")  # not sent back to the login form


def test_the_project_passes_the_system_checks(example_env: dict[str, str]) -> None:
    assert "no issues" in manage(example_env, "check")


def test_the_chat_that_emits_to_everyone_has_a_rate_limit(example_env: dict[str, str]) -> None:
    """``check --deploy`` finds every path that emits to everyone rate limited (no W004)."""
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=EXAMPLE,
        env=example_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert "tornado_websockets.W003" in output  # the deploy checks ran (DEBUG is on in the demo)
    assert "tornado_websockets.W004" not in output


# The WebSockets --------------------------------------------------------------------------------


async def test_echo_sends_each_message_back(base: str) -> None:
    async with await WebSocketTestClient.connect(ws_url(base, "/echo")) as client:
        await client.emit("echo", {"message": "hi <b>there</b>"})
        assert await client.wait_for("echo") == {"message": "hi <b>there</b>"}


async def test_chat_refuses_anonymous_clients(base: str) -> None:
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await WebSocketTestClient.connect(ws_url(base, "/chat"))
    assert refused.value.code == 403


async def test_chat_names_each_sender_from_the_session(base: str) -> None:
    demo_cookie, alice_cookie = await asyncio.gather(
        log_in(base, "demo", "demo"), log_in(base, "alice", "alice")
    )
    url = ws_url(base, "/chat")
    async with (
        await WebSocketTestClient.connect(url, headers={"Cookie": demo_cookie}) as demo,
        await WebSocketTestClient.connect(url, headers={"Cookie": alice_cookie}) as alice,
    ):
        await demo.emit(
            "message", {"message": "hi alice", "username": "mallory"}
        )  # a claimed name is ignored
        expected = {"username": "demo", "message": "hi alice"}
        assert await demo.wait_for("message") == expected
        assert await alice.wait_for("message") == expected
        await alice.emit("message", {"message": "hi demo"})
        assert await demo.wait_for("message") == {"username": "alice", "message": "hi demo"}


async def test_the_progress_task_reports_each_step_then_done(base: str) -> None:
    url = ws_url(base, "/progress")
    prefix = "module_progressbar_demo_"
    async with (
        await WebSocketTestClient.connect(url) as starter,
        await WebSocketTestClient.connect(url) as other,
    ):
        assert (await starter.wait_for(prefix + "init"))["max"] == 50
        await starter.emit("start")
        await other.emit("start")  # while the task runs: ignored, the page watches that run
        frames = []
        while (frame := await starter.receive(timeout=10)).event != prefix + "done":
            frames.append(frame)
        assert [f.event for f in frames] == [prefix + "init"] + [
            prefix + "update"
        ] * 50  # one run, reset once
        assert frames[0].data == {"indeterminate": False, "min": 0, "max": 50, "current": 0}
        assert [f.data["current"] for f in frames[1:]] == list(range(1, 51))
        assert all("label" not in f.data for f in frames)  # the page shows one format: the percentage
        assert await other.wait_for(prefix + "done") == {}


async def test_logging_out_ends_the_chat_socket_of_that_session(base: str) -> None:
    """The issue's scenario: after POST /accounts/logout/ the socket no longer chats as demo."""
    cookie = await log_in(base, "demo", "demo")
    csrf = cookie.split(";")[0].split("=", 1)[1]
    async with await WebSocketTestClient.connect(ws_url(base, "/chat"), headers={"Cookie": cookie}) as chat:
        await chat.emit("message", {"message": "before"})
        assert await chat.wait_for("message") == {"username": "demo", "message": "before"}
        answer = await fetch(
            base + "/accounts/logout/",
            method="POST",
            body=urlencode({"csrfmiddlewaretoken": csrf}),
            headers={"Cookie": cookie},
            follow_redirects=False,
        )
        assert answer.code == 302, answer.body
        assert await chat.wait_closed() == 4001
        assert chat.connection.close_reason == "Signed out"


async def test_a_page_on_another_port_cannot_chat_as_the_user(base: str) -> None:
    """The issue's scenario: a page at http://127.0.0.1:8131 gets the cookie but not the socket."""
    cookie = await log_in(base, "alice", "alice")
    headers = {"Cookie": cookie, "Origin": "http://127.0.0.1:8131"}
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await WebSocketTestClient.connect(ws_url(base, "/chat"), headers=headers)
    assert refused.value.code == 403
    own = {"Cookie": cookie, "Origin": base}
    async with await WebSocketTestClient.connect(ws_url(base, "/chat"), headers=own) as chat:
        await chat.emit("message", {"message": "from the site itself"})
        assert (await chat.wait_for("message"))["username"] == "alice"
