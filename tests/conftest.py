"""Shared fixtures: every test starts with an empty TornadoWrapper and no drop counts; ``redis_server``;
``reader_settings`` (the connection owned on a transport, the bulk frame reader, Tornado's reader).

``TW_OWN_CONNECTION=0`` runs every test with connections left on Tornado's stream where the
application does not say (`tornado_websockets.ownconnection`'s default switched off); ``1`` with
them owned after the upgrade (the default).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tornado_websockets import delivery, ownconnection
from tornado_websockets.framereader import FRAME_READER_SETTING
from tornado_websockets.ownconnection import OWN_CONNECTION_SETTING
from tornado_websockets.tornadowrapper import TornadoWrapper

if TYPE_CHECKING:
    from tests.redis_server import RedisServer


#: The setting's default as released (``TW_OWN_CONNECTION`` changes it for a run).
SHIPPED_OWN_CONNECTION_DEFAULT = ownconnection.OWN_CONNECTION_DEFAULT


@pytest.fixture(autouse=True, scope="session")
def own_connection_default() -> Iterator[None]:
    """``TW_OWN_CONNECTION=0`` or ``1``: the default of every application that does not say."""
    default = ownconnection.OWN_CONNECTION_DEFAULT
    chosen = os.environ.get("TW_OWN_CONNECTION", "")
    if chosen in ("0", "1"):
        ownconnection.OWN_CONNECTION_DEFAULT = chosen == "1"
    yield
    ownconnection.OWN_CONNECTION_DEFAULT = default


@pytest.fixture(params=[True, False], ids=["owned", "iostream"])
def connection_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run the test with connections owned after the upgrade by default, then on Tornado's stream."""
    monkeypatch.setattr(ownconnection, "OWN_CONNECTION_DEFAULT", request.param)
    return bool(request.param)


@pytest.fixture(autouse=True)
def clean_wrapper() -> Iterator[None]:
    TornadoWrapper.reset()
    delivery.reset_drops()
    yield
    TornadoWrapper.reset()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, for this test only."""
    # Imported here: the core's tests run without the redis extra (tox -e nodjango).
    from tests.redis_server import RedisServer

    with RedisServer.running(tmp_path) as server:
        yield server


@pytest.fixture(
    params=["owned", "bulk", "tornado"], ids=["owned-connection", "bulk-reader", "tornado-reader"]
)
def reader_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Tornado settings running the test on a connection owned after the upgrade, with our bulk
    frame reader on Tornado's stream, then with Tornado's reader."""
    return {
        FRAME_READER_SETTING: request.param != "tornado",
        OWN_CONNECTION_SETTING: request.param == "owned",
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, one per test module that asks for it (see tests/browser.py)."""
    from tests.browser import chromium  # Playwright only where a browser test runs

    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The example project under ``runtornado`` on a free port, with its own database and demo users."""
    from tests.example_browser import example_server

    with example_server(tmp_path_factory.mktemp("example")) as server:
        yield server
