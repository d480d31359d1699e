"""Shared fixtures: every test starts with an empty TornadoWrapper and no drop counts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tornado_websockets import delivery
from tornado_websockets.tornadowrapper import TornadoWrapper


@pytest.fixture(autouse=True)
def clean_wrapper() -> Iterator[None]:
    TornadoWrapper.reset()
    delivery.reset_drops()
    yield
    TornadoWrapper.reset()
