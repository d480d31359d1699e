"""System checks of settings.TORNADO: called directly under override_settings, then by ``manage.py check``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from tests.servers import ROOT
from tornado_websockets.checks import W002, W003, check_public_endpoints, check_tornado_setting


def ids(value: Any) -> list[str]:
    with override_settings(TORNADO=value):
        return [message.id for message in check_tornado_setting()]


def test_a_missing_setting_is_fine() -> None:
    with override_settings():
        from django.conf import settings

        del settings.TORNADO
        assert check_tornado_setting() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({}, []),
        ({"port": 8000, "handlers": [("/x", object)], "settings": {"debug": True}}, []),
        ({"backplane": "redis://127.0.0.1:6379/0", "allowed_origins": ["https://app.test"]}, []),
        ([("port", 1)], ["tornado_websockets.E001"]),
        ({"port": "8000"}, ["tornado_websockets.E002"]),
        ({"port": 70000}, ["tornado_websockets.E002"]),
        ({"port": True}, ["tornado_websockets.E002"]),
        ({"handlers": "x"}, ["tornado_websockets.E003"]),
        ({"handlers": [("/x",)]}, ["tornado_websockets.E003"]),
        ({"settings": []}, ["tornado_websockets.E004"]),
        ({"backplane": "amqp://x"}, ["tornado_websockets.E005"]),
        ({"threads": 0}, ["tornado_websockets.E006"]),
        ({"view_threads": "many"}, ["tornado_websockets.E006"]),
        ({"allowed_origins": ["*"]}, ["tornado_websockets.E007"]),
        ({"allowed_origins": "https://a.test"}, ["tornado_websockets.E007"]),
        ({"explorer": True}, []),
        ({"explorer": 1}, ["tornado_websockets.E008"]),
        ({"metrics": True}, []),
        ({"metrics": False}, []),
        ({"metrics": "staff"}, ["tornado_websockets.E009"]),
        ({"xheaders": True}, []),
        ({"xheaders": "yes"}, ["tornado_websockets.E010"]),
        ({"session_check_interval": 5}, []),
        ({"session_check_interval": 0.5}, []),
        ({"session_check_interval": 0}, ["tornado_websockets.E011"]),
        ({"session_check_interval": "30"}, ["tornado_websockets.E011"]),
        ({"loop": "asyncio"}, []),
        ({"loop": "uvloop"}, []),
        ({"loop": "trio"}, ["tornado_websockets.E012"]),
        ({"loop": None}, ["tornado_websockets.E012"]),
        ({"prot": 8000}, ["tornado_websockets.W001"]),
        ({"port": "x", "settings": 1}, ["tornado_websockets.E002", "tornado_websockets.E004"]),
    ],
)
def test_check_ids(value: Any, expected: list[str]) -> None:
    assert ids(value) == expected


def test_messages_say_what_to_write() -> None:
    with override_settings(TORNADO={"backplane": "amqp://x"}):
        (error,) = check_tornado_setting()
    assert "redis://" in error.msg + (error.hint or "")


def test_the_uvloop_loop_without_the_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # not importable, as where it is not installed
    with override_settings(TORNADO={"loop": "uvloop"}):
        (error,) = check_tornado_setting()
    assert error.id == "tornado_websockets.E013"
    assert "pip install 'django-tornado-websockets[uvloop]'" in (error.hint or "")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('["port"]', "tornado_websockets.E001"),
        ('{"handlers": 5}', "tornado_websockets.E003"),
        ('{"settings": [1]}', "tornado_websockets.E004"),
        ('{"backplane": "amqp://x"}', "tornado_websockets.E005"),
        ('{"allowed_origins": 3}', "tornado_websockets.E007"),
    ],
)
def test_manage_py_check_reports_a_malformed_setting(tmp_path: Path, value: str, expected: str) -> None:
    """Django starts (the app reads TORNADO in ready()) so that the check can say what is wrong."""
    (tmp_path / "malformed_settings.py").write_text(
        f"from tests.django_settings import *\nTORNADO = {value}\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "malformed_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("debug", "tornado", "expected"),
    [
        (False, {}, []),
        (False, {"metrics": None, "explorer": True}, []),  # staff only outside DEBUG
        (False, {"metrics": False}, []),
        (False, {"metrics": True}, [W002]),
        (True, {}, [W003]),
        (True, {"metrics": True}, [W002, W003]),
    ],
)
def test_deploy_checks_warn_about_public_endpoints(
    debug: bool, tornado: dict[str, Any], expected: list[str]
) -> None:
    with override_settings(DEBUG=debug, TORNADO=tornado):
        assert [message.id for message in check_public_endpoints()] == expected


def test_manage_py_check_deploy_reports_public_metrics(tmp_path: Path) -> None:
    (tmp_path / "public_settings.py").write_text(
        "from tests.django_settings import *\nDEBUG = False\nTORNADO = {'metrics': True}\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "public_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    run = [sys.executable, "-m", "django", "check"]
    deploy = subprocess.run([*run, "--deploy"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    plain = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert W002 in deploy.stdout + deploy.stderr
    assert W002 not in plain.stdout + plain.stderr  # a deployment check only


BROADCASTING = """
from tornado_websockets import Limits, WebSocket

chat = WebSocket("/chat")
limited = WebSocket("/limited", limits=Limits(max_rate=5, burst=10))
private = WebSocket("/private")

@chat.on
async def message(socket, data):
    chat.emit("message", data)          # everyone on /chat

@limited.on
async def message(socket, data):
    limited.emit("message", data)

@private.on
async def whisper(socket, data):
    socket.emit("whisper", data)        # only the sender
    private.to("room").emit("x", data)  # a room
"""


def test_a_path_emitting_to_everyone_without_a_rate_limit_is_a_deploy_warning() -> None:
    from tornado_websockets.checks import W004, check_rate_limits, emits_to_everyone

    namespace: dict[str, Any] = {}
    exec(BROADCASTING, namespace)
    assert emits_to_everyone(namespace["chat"].events["message"].callback)
    assert not emits_to_everyone(namespace["private"].events["whisper"].callback)
    warnings = check_rate_limits()
    assert [warning.id for warning in warnings] == [W004]
    assert "'/chat'" in warnings[0].msg
    assert "message" in warnings[0].msg
