"""Shared fixtures: every test starts with an empty TornadoWrapper and no drop counts; ``redis_server``;
``reader_settings`` (the bulk frame reader on, then off)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tornado_websockets import delivery
from tornado_websockets.framereader import FRAME_READER_SETTING
from tornado_websockets.tornadowrapper import TornadoWrapper

if TYPE_CHECKING:
    from tests.redis_server import RedisServer


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


@pytest.fixture(params=[True, False], ids=["bulk-reader", "tornado-reader"])
def reader_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Tornado settings running the test with our bulk frame reader, then with Tornado's."""
    return {FRAME_READER_SETTING: request.param}


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
