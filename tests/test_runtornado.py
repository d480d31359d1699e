"""runtornado: arguments, refusals, and a real server process serving Django and WebSockets on one port."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
from django.core.management import CommandError, call_command

from tests.polling import wait_until
from tests.redis_server import RedisServer
from tests.servers import ROOT, connect_when_up, finished, free_port, running, wait_for_http
from tornado_websockets.broker_redis import DEFAULT_CHANNEL
from tornado_websockets.management.commands.runtornado import Command
from tornado_websockets.testing import WebSocketTestClient

DJANGO_ENV = {"DJANGO_SETTINGS_MODULE": "tests.django_settings"}


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace run so that no port is bound: what it would have run with is recorded."""
    calls: list[dict[str, Any]] = []

    def run(self: Command, **options: Any) -> None:
        calls.append({"addr": self.addr, "port": self.port, **options})

    monkeypatch.setattr(Command, "run", run)
    return calls


@pytest.mark.parametrize(
    ("argv", "addr", "port"),
    [
        ([], "127.0.0.1", 8765),  # TORNADO['port'] of the test settings
        (["9001"], "127.0.0.1", 9001),
        (["0.0.0.0:9002"], "0.0.0.0", 9002),
        (["[::1]:9003"], "::1", 9003),
        (["localhost:9004"], "localhost", 9004),
    ],
)
def test_addrport(ran: list[dict[str, Any]], argv: list[str], addr: str, port: int) -> None:
    call_command("runtornado", *argv, "--noreload")
    assert (ran[0]["addr"], ran[0]["port"], ran[0]["use_reloader"]) == (addr, port, False)


@pytest.mark.parametrize("argv", [["abc"], ["70000"], ["1.2.3.4:"], ["0"]])
def test_bad_ports_are_command_errors(ran: list[dict[str, Any]], argv: list[str]) -> None:
    with pytest.raises(CommandError, match="not a valid port"):
        call_command("runtornado", *argv)
    assert ran == []


def test_several_processes_need_a_cross_process_backplane(ran: list[dict[str, Any]]) -> None:
    with pytest.raises(CommandError, match="TORNADO\\['backplane'\\]"):
        call_command("runtornado", "--processes", "2", "--noreload")


def test_view_threads_names_the_views_pool(ran: list[dict[str, Any]]) -> None:
    call_command("runtornado", "--noreload", "--view-threads", "4")
    assert ran[0]["view_threads"] == 4
    with pytest.raises(CommandError, match="--view-threads should be at least 1"):
        call_command("runtornado", "--noreload", "--view-threads", "0")


def test_the_old_threads_flag_still_works_with_a_deprecation_warning(
    ran: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.warns(DeprecationWarning, match="use --view-threads"):
        call_command("runtornado", "--noreload", "--threads", "8")
    assert ran[0]["view_threads"] == 8
    assert "TORNADO['threads'] sets those of the event functions" in capsys.readouterr().err


async def test_bad_port_exits_with_code_1() -> None:
    async with running(["-m", "django", "runtornado", "nonsense"], env=DJANGO_ENV) as process:
        output = await finished(process, 30)
    assert process.returncode == 1
    assert "not a valid port" in output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serves_django_static_files_and_websockets_on_one_port_then_stops_on_a_signal(
    signum: signal.Signals,
) -> None:
    port = free_port()
    async with running(
        ["-m", "django", "runtornado", f"127.0.0.1:{port}", "--noreload"], env=DJANGO_ENV
    ) as server:
        await wait_for_http(f"http://127.0.0.1:{port}/hello/")
        http = tornado.httpclient.AsyncHTTPClient()
        assert (await http.fetch(f"http://127.0.0.1:{port}/hello/")).body == b"hello from django"
        static = await http.fetch(f"http://127.0.0.1:{port}/static/djangotestapp/hello.txt")
        assert static.body == b"static hello\n"
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/discovered")
        await client.emit("echo", {"over": "runtornado"})
        assert await client.wait_for("echo") == {"over": "runtornado"}
        server.send_signal(signum)  # the server itself (--noreload), as a process manager or Ctrl-C does
        assert await client.wait_closed() == 1001
        output = await finished(server, 15)
    assert server.returncode == 0, output
    assert f"Received {signum.name}, shutting down" in output
    assert f"Serving Django and WebSockets at http://127.0.0.1:{port}/" in output
    assert f"WebSocket ws://127.0.0.1:{port}/ws/discovered" in output


def test_the_loop_comes_from_the_option_or_the_setting(ran: list[dict[str, Any]], settings: Any) -> None:
    call_command("runtornado", "--noreload")
    call_command("runtornado", "--noreload", "--loop", "uvloop")
    settings.TORNADO = {**settings.TORNADO, "loop": "uvloop"}
    call_command("runtornado", "--noreload")
    call_command("runtornado", "--noreload", "--loop", "asyncio")
    assert [call["loop"] for call in ran] == ["asyncio", "uvloop", "uvloop", "asyncio"]


def test_a_bad_or_missing_loop_is_a_command_error_naming_the_fix(
    ran: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    with pytest.raises(CommandError, match="invalid choice: 'trio'"):
        call_command("runtornado", "--noreload", "--loop", "trio")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # not importable, as where it is not installed
    with pytest.raises(CommandError, match=r"--loop is 'uvloop'\. .*\[uvloop\]'"):
        call_command("runtornado", "--noreload", "--loop", "uvloop")
    settings.TORNADO = {**settings.TORNADO, "loop": "uvloop"}
    with pytest.raises(CommandError, match=r"TORNADO\['loop'\] is 'uvloop'\. .*\[uvloop\]'"):
        call_command("runtornado", "--noreload")
    assert ran == []


async def test_serves_django_and_websockets_on_the_uvloop_loop() -> None:
    port = free_port()
    argv = ["-m", "django", "runtornado", f"127.0.0.1:{port}", "--noreload", "--loop", "uvloop"]
    async with running(argv, env=DJANGO_ENV) as server:
        await wait_for_http(f"http://127.0.0.1:{port}/hello/")
        http = tornado.httpclient.AsyncHTTPClient()
        assert (await http.fetch(f"http://127.0.0.1:{port}/hello/")).body == b"hello from django"
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/discovered")
        await client.emit("echo", {"over": "uvloop"})
        assert await client.wait_for("echo") == {"over": "uvloop"}
        server.send_signal(signal.SIGTERM)
        assert await client.wait_closed() == 1001
        output, _ = await asyncio.to_thread(server.communicate, timeout=15)
    assert server.returncode == 0, output
    assert "Event loop: uvloop.Loop" in output


def test_several_processes_need_noreload(ran: list[dict[str, Any]], settings: Any) -> None:
    settings.DEBUG = True  # the reloader runs only in DEBUG (pytest-django turns it off)
    with pytest.raises(CommandError, match="--noreload"):
        call_command("runtornado", "--processes", "2")


async def test_a_port_in_use_exits_with_code_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["-m", "django", "runtornado", f"127.0.0.1:{port}", "--noreload"]
        async with running(argv, env=DJANGO_ENV) as process:
            output = await finished(process, 30)
    assert process.returncode == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}" in output


# The original library documented importing the event functions from views.py; no websockets module.
LEGACY_APP = {
    "__init__.py": "",
    "events.py": """
        from tornado_websockets.websocket import WebSocket

        legacy = WebSocket("/legacy")

        @legacy.on
        async def echo(socket, data):
            socket.emit("echo", data)
    """,
    "views.py": """
        from django.http import HttpResponse

        from legacyapp import events  # noqa: F401 - registers the WebSocket, as the original documented

        def page(request):
            return HttpResponse("legacy page")
    """,
    "urls.py": """
        from django.urls import path

        from legacyapp.views import page

        urlpatterns = [path("page/", page)]
    """,
}


async def test_websockets_imported_from_views_py_are_served(tmp_path: Path) -> None:
    app = tmp_path / "legacyapp"
    app.mkdir()
    for name, text in LEGACY_APP.items():
        (app / name).write_text(textwrap.dedent(text))
    (tmp_path / "legacy_settings.py").write_text(
        "from tests.django_settings import *\n"
        "INSTALLED_APPS = [*INSTALLED_APPS, 'legacyapp']\n"
        "ROOT_URLCONF = 'legacyapp.urls'\n"
    )
    port = free_port()
    env = {"DJANGO_SETTINGS_MODULE": "legacy_settings", "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    argv = ["-m", "django", "runtornado", f"127.0.0.1:{port}", "--noreload"]
    async with running(argv, env=env, cwd=tmp_path) as server:
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/legacy")
        await client.emit("echo", {"from": "views.py"})
        assert await client.wait_for("echo") == {"from": "views.py"}
        page = await tornado.httpclient.AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/page/")
        assert page.body == b"legacy page"
        client.close()
        server.send_signal(signal.SIGTERM)
        output = await finished(server, 15)
    assert f"WebSocket ws://127.0.0.1:{port}/ws/legacy" in output


PROCESSES_APP = """
import os

from django.db import connection

from tornado_websockets.websocket import WebSocket

procs = WebSocket("/procs")

@procs.on
def whoami():
    with connection.cursor() as cursor:  # a worker thread of a forked process may use the database
        cursor.execute("SELECT 1")
    return os.getpid()

@procs.on
async def say(data):
    procs.emit("said", {"text": data["text"], "pid": os.getpid()})
"""


async def test_several_processes_share_the_port_and_emits_through_redis(tmp_path: Path) -> None:
    app = tmp_path / "procapp"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "websockets.py").write_text(textwrap.dedent(PROCESSES_APP))
    port = free_port()
    with RedisServer.running(tmp_path) as redis_server:
        (tmp_path / "procs_settings.py").write_text(
            "from tests.django_settings import *\n"
            "INSTALLED_APPS = [*INSTALLED_APPS, 'procapp']\n"
            f"TORNADO = {{'backplane': {redis_server.url!r}}}\n"
        )
        env = {"DJANGO_SETTINGS_MODULE": "procs_settings", "PYTHONPATH": f"{tmp_path}:{ROOT}"}
        argv = ["-m", "django", "runtornado", f"127.0.0.1:{port}", "--processes", "2", "--noreload"]
        async with running(argv, env=env, cwd=tmp_path) as parent:
            await wait_until(lambda: redis_server.subscribers(DEFAULT_CHANNEL) == 2, timeout=20)
            clients: list[WebSocketTestClient] = []
            pids: set[int] = set()
            # The kernel hands each connection to whichever process accepts first: one at a time,
            # an idle process can win them all, so connect in bursts until both have some.
            while len(pids) < 2:
                assert len(clients) < 200, f"every connection went to one process: {pids}"
                burst = await asyncio.gather(
                    *(connect_when_up(f"ws://127.0.0.1:{port}/ws/procs") for _ in range(20))
                )
                clients += burst
                pids |= set(await asyncio.gather(*(client.request("whoami") for client in burst)))
            first_pid = await clients[0].request("whoami")
            await clients[0].emit("say", {"text": "to both processes"})
            for client in clients:
                assert await client.wait_for("said") == {"text": "to both processes", "pid": first_pid}
            parent.send_signal(signal.SIGTERM)  # passed on to each process, which closes gracefully
            for client in clients:
                assert await client.wait_closed() == 1001
            output = await finished(parent, 15)
    assert parent.returncode == 0, output
    assert output.count("Serving Django and WebSockets at") == 2


# Behind a proxy: --xheaders, SECURE_PROXY_SSL_HEADER ------------------------------------------

PROXY_HEADERS = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


async def _seen_by(served: Any) -> tuple[str, dict[str, str]]:
    """What a view and a socket see of a request carrying a proxy's headers."""
    view = await tornado.httpclient.AsyncHTTPClient().fetch(served.base + "/where/", headers=PROXY_HEADERS)
    client = await WebSocketTestClient.connect(f"ws://127.0.0.1:{served.port}/ws/who", headers=PROXY_HEADERS)
    try:
        return view.body.decode(), await client.request("where")
    finally:
        client.close()


@pytest.mark.parametrize("xheaders", [True, False])
async def test_xheaders_is_off_by_default_and_on_with_the_option(tmp_path: Path, xheaders: bool) -> None:
    from tests.serving import runtornado, serving_env

    options = ["--xheaders"] if xheaders else []
    with runtornado(serving_env(tmp_path / "db.sqlite3"), *options) as served:
        view, socket = await _seen_by(served)
    if xheaders:
        assert (view, socket) == ("203.0.113.7 https", {"ip": "203.0.113.7", "scheme": "https"})
        assert "Trusting X-Forwarded-For" in served.output()
    else:  # any client could send these headers: without a proxy they are not believed
        assert (view, socket) == ("127.0.0.1 http", {"ip": "127.0.0.1", "scheme": "http"})


async def test_secure_proxy_ssl_header_sets_the_sockets_scheme(tmp_path: Path) -> None:
    from tests.serving import runtornado, serving_env

    env = serving_env(tmp_path / "db.sqlite3", SERVING_PROXY_SSL="1")
    with runtornado(env) as served:
        view, socket = await _seen_by(served)
    assert (view, socket) == ("127.0.0.1 https", {"ip": "127.0.0.1", "scheme": "https"})
