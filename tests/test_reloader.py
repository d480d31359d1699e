"""runtornado under the autoreloader: code changes restart it, and signals still shut it down gracefully."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
from pathlib import Path

from tests.servers import ROOT, connect_when_up, finished, free_port, running

DJANGO_ENV = {"DJANGO_SETTINGS_MODULE": "tests.django_settings"}  # DEBUG: the reloader is on


async def test_sigterm_to_the_reloader_closes_every_websocket_with_1001() -> None:
    port = free_port()
    async with running(["-m", "django", "runtornado", str(port)], env=DJANGO_ENV) as server:
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/discovered")
        os.kill(server.pid, signal.SIGTERM)  # the parent only, as a process manager does
        # Django's own reloader kills its child instead: the client would see 1006.
        assert await client.wait_closed(timeout=15) == 1001
        output = await finished(server, 15)
    assert server.returncode == 0, output
    assert output.count("Received SIGTERM, shutting down") == 1


async def test_ctrl_c_reaches_both_processes_and_shuts_down_once() -> None:
    port = free_port()
    async with running(["-m", "django", "runtornado", str(port)], env=DJANGO_ENV) as server:
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/discovered")
        os.killpg(server.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
        assert await client.wait_closed(timeout=15) == 1001
        output = await finished(server, 15)
    assert server.returncode == 0, output
    assert output.count("Received SIGINT, shutting down") == 1


APP = """
from tornado_websockets.websocket import WebSocket
ws = WebSocket("/reloading")

@ws.on
async def version(socket):
    return {version}
"""


async def test_autoreload_picks_up_a_changed_websockets_module(tmp_path: Path) -> None:
    app = tmp_path / "reloadapp"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "websockets.py").write_text(textwrap.dedent(APP.format(version=1)))
    (tmp_path / "reload_settings.py").write_text(
        "from tests.django_settings import *\nINSTALLED_APPS = [*INSTALLED_APPS, 'reloadapp']\n"
    )
    port = free_port()
    env = {"DJANGO_SETTINGS_MODULE": "reload_settings", "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    async with running(["-m", "django", "runtornado", str(port)], env=env, cwd=tmp_path):
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/reloading")
        assert await client.request("version") == 1
        await asyncio.sleep(1.2)  # a later modification time than the first import
        (app / "websockets.py").write_text(textwrap.dedent(APP.format(version=2)))
        # The reloader restarts the server, closing with 1012 ("service restart", not a drop: 1006).
        assert await client.wait_closed(timeout=20) == 1012
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/reloading")
        assert await client.request("version") == 2
        client.close()
