"""Shared fixtures: every test starts with an empty TornadoWrapper and no drop counts; ``redis_server``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer
from tornado_websockets import delivery
from tornado_websockets.tornadowrapper import TornadoWrapper


@pytest.fixture(autouse=True)
def clean_wrapper() -> Iterator[None]:
    TornadoWrapper.reset()
    delivery.reset_drops()
    yield
    TornadoWrapper.reset()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, for this test only."""
    with RedisServer.running(tmp_path) as server:
        yield server
