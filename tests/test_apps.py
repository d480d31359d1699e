"""The Django app: autodiscovery of websockets modules, executor and backplane set-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from django.apps import apps

from tornado_websockets.apps import TornadoWebSocketsConfig
from tornado_websockets.djangoapp import DjangoExecutor
from tornado_websockets.tornadowrapper import TornadoWrapper

ROOT = Path(__file__).resolve().parent.parent


def test_the_app_is_installed_with_its_config() -> None:
    assert isinstance(apps.get_app_config("tornado_websockets"), TornadoWebSocketsConfig)


def test_sync_event_functions_get_an_executor_that_closes_stale_connections() -> None:
    assert isinstance(TornadoWrapper.get_executor(), DjangoExecutor)


def test_websockets_modules_are_discovered_at_startup() -> None:
    code = (
        "import django; django.setup();"
        "from tornado_websockets.tornadowrapper import TornadoWrapper;"
        "print(sorted(TornadoWrapper.websockets))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "tests.django_settings", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "['/discovered']"


def test_importing_the_package_does_not_import_django() -> None:
    code = "import sys, tornado_websockets, tornado_websockets.testing; print('django' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
