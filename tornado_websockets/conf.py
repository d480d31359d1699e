"""The ``TORNADO`` Django setting, read with its defaults. Every key is optional.

::

    TORNADO = {
        "port": 8000,                  # runtornado's default port
        "handlers": [],                # extra Tornado handler specs, served before Django
        "settings": {},                # Tornado application settings
        "backplane": None,             # "redis://127.0.0.1:6379/0" for several processes
        "threads": 16,                 # worker threads for plain def event functions
        "view_threads": 16,            # worker threads for Django views
        "allowed_origins": [],         # extra origins allowed to connect, e.g. "https://app.example.com"
        "explorer": None,              # AsyncAPI JSON and event explorer: None = in DEBUG only,
                                       # True = also outside DEBUG (staff only), False = never
        "metrics": None,               # metrics.json and Prometheus metrics: None = everyone in DEBUG,
                                       # staff otherwise; True = everyone; False = never (nor dashboard)
        "xheaders": False,             # trust X-Forwarded-For/-Proto, X-Real-Ip, X-Scheme: only
                                       # behind a proxy that sets them (runtornado --xheaders)
        "session_check_interval": 30,  # seconds between two re-validations of a signed-in
                                       # socket's session: the bound on how long a socket may
                                       # act for a session that ended without a signal here
        "loop": "asyncio",             # the event loop: "asyncio", or "uvloop" (the uvloop extra;
                                       # runtornado --loop overrides it)
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tornado_websockets.loops import LOOP_NAMES

__all__ = ["DEFAULTS", "TornadoSettings", "tornado_settings"]

DEFAULTS: dict[str, Any] = {
    "port": 8000,
    "handlers": [],
    "settings": {},
    "backplane": None,
    "threads": 16,
    "view_threads": 16,
    "allowed_origins": [],
    "explorer": None,
    "metrics": None,
    "xheaders": False,
    "session_check_interval": 30.0,
    "loop": "asyncio",
}


@dataclass(frozen=True, slots=True)
class TornadoSettings:
    """``settings.TORNADO`` merged over `DEFAULTS`."""

    port: int = 8000
    handlers: list[Any] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    backplane: str | None = None
    threads: int = 16
    view_threads: int = 16
    allowed_origins: list[str] = field(default_factory=list)
    explorer: bool | None = None
    metrics: bool | None = None
    xheaders: bool = False
    session_check_interval: float = 30.0
    loop: str = "asyncio"


def tornado_settings() -> TornadoSettings:
    """Read ``settings.TORNADO`` (missing is fine: the defaults apply). Call after Django is set up.

    A malformed value is reported by ``manage.py check`` (see `tornado_websockets.checks`), so it
    must not raise here, where the app's start-up reads it before any check can run: a setting
    that is not a dict, and a ``handlers``, ``settings`` or ``allowed_origins`` of the wrong
    type, and an unknown ``loop``, are read as their defaults. The other keys are taken as they are.
    """
    from django.conf import settings

    configured = getattr(settings, "TORNADO", None)
    if not isinstance(configured, dict):
        configured = {}  # tornado_websockets.E001
    merged = {**DEFAULTS, **{key: value for key, value in configured.items() if key in DEFAULTS}}
    return TornadoSettings(
        port=merged["port"],
        handlers=_sequence(merged, "handlers"),
        settings=dict(merged["settings"]) if isinstance(merged["settings"], dict) else {},
        backplane=merged["backplane"],
        threads=merged["threads"],
        view_threads=merged["view_threads"],
        allowed_origins=_sequence(merged, "allowed_origins"),
        explorer=merged["explorer"],
        metrics=merged["metrics"],
        xheaders=merged["xheaders"] is True,
        session_check_interval=_interval(merged["session_check_interval"]),
        loop=merged["loop"] if merged["loop"] in LOOP_NAMES else DEFAULTS["loop"],
    )


def _sequence(merged: dict[str, Any], key: str) -> list[Any]:
    """``merged[key]`` as a list, or the default when it is not a list or a tuple (a check reports it)."""
    value = merged[key]
    return list(value) if isinstance(value, (list, tuple)) else list(DEFAULTS[key])


def _interval(value: Any) -> float:
    """A positive number of seconds, or the default (a check reports a bad value)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return float(DEFAULTS["session_check_interval"])
    return float(value)
