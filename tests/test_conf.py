"""Reading settings.TORNADO with its defaults."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from tornado_websockets.conf import DEFAULTS, tornado_settings


def test_defaults_apply_when_the_setting_is_missing() -> None:
    with override_settings():
        from django.conf import settings

        del settings.TORNADO
        conf = tornado_settings()
    assert (conf.port, conf.handlers, conf.settings, conf.backplane) == (8000, [], {}, None)
    assert conf.threads == DEFAULTS["threads"]


def test_given_keys_override_the_defaults() -> None:
    with override_settings(TORNADO={"port": 9001, "settings": {"debug": True}, "unknown": 1}):
        conf = tornado_settings()
    assert (conf.port, conf.settings, conf.view_threads) == (9001, {"debug": True}, 16)


def test_metrics_is_none_unless_set() -> None:
    with override_settings(TORNADO={}):
        assert tornado_settings().metrics is None
    with override_settings(TORNADO={"metrics": True}):
        assert tornado_settings().metrics is True


@pytest.mark.parametrize(
    "value",
    [["port"], {"handlers": 5}, {"settings": [1]}, {"allowed_origins": 3}],
)
def test_a_malformed_setting_reads_as_the_defaults_for_the_check_to_report(value: Any) -> None:
    with override_settings(TORNADO=value):
        conf = tornado_settings()
    assert (conf.handlers, conf.settings, conf.allowed_origins) == ([], {}, [])


def test_the_loop_is_asyncio_unless_set_and_an_unknown_one_reads_as_the_default() -> None:
    with override_settings(TORNADO={}):
        assert tornado_settings().loop == "asyncio"
    with override_settings(TORNADO={"loop": "uvloop"}):
        assert tornado_settings().loop == "uvloop"
    with override_settings(TORNADO={"loop": "trio"}):  # tornado_websockets.E012 reports it
        assert tornado_settings().loop == "asyncio"
