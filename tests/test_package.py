"""The package's own namespace: every name a user needs, one import path each, and no Django."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import tornado_websockets
from tornado_websockets import exceptions, limits, modules, testing, tornadowrapper, websocket

ROOT = Path(__file__).resolve().parent.parent


def test_every_public_name_is_importable_from_the_package() -> None:
    for name in tornado_websockets.__all__:
        assert getattr(tornado_websockets, name) is not None, name
    # The names the docs use, defined where they are and re-exported unchanged.
    assert tornado_websockets.WebSocket is websocket.WebSocket
    assert tornado_websockets.TornadoWrapper is tornadowrapper.TornadoWrapper
    assert tornado_websockets.EventError is exceptions.EventError
    assert tornado_websockets.ConnectionDenied is exceptions.ConnectionDenied
    assert tornado_websockets.PayloadError is exceptions.PayloadError
    assert tornado_websockets.Limits is limits.Limits
    assert tornado_websockets.ProgressBar is modules.ProgressBar
    assert tornado_websockets.serve is testing.serve


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="'Serve'"):
        tornado_websockets.Serve  # type: ignore[attr-defined]  # noqa: B018


def test_the_package_loads_neither_django_nor_the_test_helper() -> None:
    code = (
        "import sys, tornado_websockets\n"
        "print('django' in sys.modules, 'tornado_websockets.testing' in sys.modules)\n"
        "from tornado_websockets import serve\n"
        "print('tornado_websockets.testing' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False", "True"]


def test_every_module_has_a_place_in_the_layers() -> None:
    """`make lint` checks the layers (lint-imports); a module left out of them would be unchecked."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    layers = config["tool"]["importlinter"]["contracts"][0]["layers"]
    placed = {name.strip() for layer in layers for name in layer.split(":")}
    package = ROOT / "tornado_websockets"
    modules = {path.stem for path in package.glob("*.py")} - {"__init__"}
    modules |= {path.name for path in package.iterdir() if (path / "__init__.py").is_file()}
    assert modules - placed == set(), "add these modules to a layer in pyproject.toml"
    assert placed - modules == set(), "these layers name modules that no longer exist"
