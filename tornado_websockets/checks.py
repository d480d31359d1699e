"""Django system checks of the ``TORNADO`` setting, run by ``manage.py check`` and at start-up."""

from __future__ import annotations

import dis
import inspect
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage, Error, Tags, register

from tornado_websockets.conf import DEFAULTS
from tornado_websockets.loops import LOOP_NAMES, UVLOOP_MISSING, loop_available

__all__ = ["check_public_endpoints", "check_rate_limits", "check_tornado_setting", "emits_to_everyone"]

E001 = "tornado_websockets.E001"  # TORNADO is not a dict
E002 = "tornado_websockets.E002"  # bad port
E003 = "tornado_websockets.E003"  # handlers not a list of specs
E004 = "tornado_websockets.E004"  # settings not a dict
E005 = "tornado_websockets.E005"  # bad backplane URL
E006 = "tornado_websockets.E006"  # bad thread count
E007 = "tornado_websockets.E007"  # bad allowed_origins
E008 = "tornado_websockets.E008"  # bad explorer
E009 = "tornado_websockets.E009"  # bad metrics
E010 = "tornado_websockets.E010"  # bad xheaders
E011 = "tornado_websockets.E011"  # bad session_check_interval
E012 = "tornado_websockets.E012"  # bad loop
E013 = "tornado_websockets.E013"  # loop = "uvloop" without uvloop installed
W001 = "tornado_websockets.W001"  # unknown key
W002 = "tornado_websockets.W002"  # deploy: metrics open to everyone
W003 = "tornado_websockets.W003"  # deploy: DEBUG opens metrics, explorer and AsyncAPI to everyone
W004 = "tornado_websockets.W004"  # deploy: a path emits to everyone on a client's event, with no rate limit


@register(Tags.compatibility)
def check_tornado_setting(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Report every malformed part of ``settings.TORNADO``; a missing setting is fine."""
    value = getattr(settings, "TORNADO", None)
    if value is None:
        return []
    if not isinstance(value, dict):
        return [Error("TORNADO should be a dict.", hint="TORNADO = {'port': 8000}", id=E001)]
    errors: list[CheckMessage] = []
    port = value.get("port", DEFAULTS["port"])
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        errors.append(Error(f"TORNADO['port'] should be an int from 0 to 65535, not {port!r}.", id=E002))
    handlers = value.get("handlers", [])
    if not isinstance(handlers, (list, tuple)) or not all(
        isinstance(spec, (list, tuple)) and 2 <= len(spec) <= 4 and isinstance(spec[0], str)
        for spec in handlers
    ):
        errors.append(
            Error(
                "TORNADO['handlers'] should be a list of Tornado handler specs.",
                hint="[(r'/hello', HelloHandler), (r'/page', PageHandler, {'option': 1})]",
                id=E003,
            )
        )
    if not isinstance(value.get("settings", {}), dict):
        errors.append(Error("TORNADO['settings'] should be a dict of Tornado application settings.", id=E004))
    backplane = value.get("backplane")
    if backplane is not None and (
        not isinstance(backplane, str)
        or not backplane.startswith(("memory://", "redis://", "rediss://", "unix://"))
    ):
        errors.append(
            Error(
                f"TORNADO['backplane'] should be None, 'memory://' or a Redis URL, not {backplane!r}.",
                hint="'redis://127.0.0.1:6379/0'",
                id=E005,
            )
        )
    for key in ("threads", "view_threads"):
        threads = value.get(key, DEFAULTS[key])
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            errors.append(Error(f"TORNADO[{key!r}] should be a positive int, not {threads!r}.", id=E006))
    origins = value.get("allowed_origins", [])
    if not isinstance(origins, (list, tuple)) or not all(
        isinstance(o, str) and "://" in o and o != "*" for o in origins
    ):
        errors.append(
            Error(
                "TORNADO['allowed_origins'] should be a list of origins such as 'https://app.example.com'.",
                hint="Allowing every origin is not offered: list the ones you trust.",
                id=E007,
            )
        )
    explorer = value.get("explorer")
    if explorer is not None and not isinstance(explorer, bool):
        errors.append(
            Error(
                f"TORNADO['explorer'] should be None (on in DEBUG only), True or False, not {explorer!r}.",
                hint="True serves the AsyncAPI document and the explorer outside DEBUG, to staff only.",
                id=E008,
            )
        )
    metrics = value.get("metrics")
    if metrics is not None and not isinstance(metrics, bool):
        errors.append(
            Error(
                f"TORNADO['metrics'] should be None (DEBUG or staff), True or False, not {metrics!r}.",
                hint="True opens metrics.json and metrics to all (scrapers); the dashboard stays staff only.",
                id=E009,
            )
        )
    xheaders = value.get("xheaders", False)
    if not isinstance(xheaders, bool):
        errors.append(
            Error(
                f"TORNADO['xheaders'] should be True or False, not {xheaders!r}.",
                hint="True only behind a proxy that sets X-Forwarded-For and X-Forwarded-Proto itself.",
                id=E010,
            )
        )
    interval = value.get("session_check_interval", DEFAULTS["session_check_interval"])
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        errors.append(
            Error(
                "TORNADO['session_check_interval'] should be a positive number of seconds, "
                f"not {interval!r}.",
                hint="It bounds how long a socket acts for a session that ended: 30 is the default.",
                id=E011,
            )
        )
    errors.extend(_check_loop(value.get("loop", DEFAULTS["loop"])))
    errors.extend(
        checks.Warning(
            f"TORNADO has an unknown key {key!r}; it is ignored.", hint=f"Known: {sorted(DEFAULTS)}", id=W001
        )
        for key in value
        if key not in DEFAULTS
    )
    return errors


def _check_loop(loop: object) -> list[CheckMessage]:
    """``TORNADO['loop']``: a known loop, installed."""
    if not isinstance(loop, str) or loop not in LOOP_NAMES:
        return [
            Error(
                f"TORNADO['loop'] should be one of {', '.join(map(repr, LOOP_NAMES))}, not {loop!r}.",
                hint="'asyncio' (the default) or 'uvloop' (pip install 'django-tornado-websockets[uvloop]').",
                id=E012,
            )
        ]
    if not loop_available(loop):
        return [Error(f"TORNADO['loop'] is {loop!r}, which is not installed.", hint=UVLOOP_MISSING, id=E013)]
    return []


@register(Tags.security, deploy=True)
def check_public_endpoints(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """``manage.py check --deploy``: warn when metrics, the explorer or AsyncAPI would be public."""
    warnings: list[CheckMessage] = []
    value = getattr(settings, "TORNADO", None)
    if isinstance(value, dict) and value.get("metrics") is True:
        warnings.append(
            checks.Warning(
                "TORNADO['metrics'] = True serves ws-api/metrics.json and ws-api/metrics to everyone: "
                "paths, room names and sizes, traffic and errors.",
                hint="Leave it None (staff only outside DEBUG), or allow only your scraper at the proxy.",
                id=W002,
            )
        )
    if settings.DEBUG:
        warnings.append(
            checks.Warning(
                "DEBUG serves ws-api/metrics.json, ws-api/metrics, ws-api/asyncapi.json and the "
                "event explorer to everyone, signed in or not.",
                hint="Set DEBUG = False in production.",
                id=W003,
            )
        )
    return warnings


@register(Tags.security, deploy=True)
def check_rate_limits(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """``manage.py check --deploy``: warn about paths whose event functions emit to everyone unlimited.

    One client of such a path can make the server send every other client as many frames as it
    sends (10,000 in a second: 10,000 frames to each of them). A rate limit bounds it.
    """
    from tornado_websockets.server import default_server

    server = default_server()
    warnings: list[CheckMessage] = []
    for path, websocket in sorted(server.websockets.items()):
        limits = websocket.limits or server.limits
        if limits.max_rate is not None:
            continue
        broadcasting = sorted(
            name for name, function in websocket.events.items() if emits_to_everyone(function.callback)
        )
        if broadcasting:
            warnings.append(
                checks.Warning(
                    f"WebSocket {path!r} emits to everyone from {', '.join(broadcasting)} and has no rate "
                    "limit: one client can make it send every other client as many frames as it sends.",
                    hint=f"WebSocket({path!r}, limits=Limits(max_rate=5, burst=10)), "
                    "or TornadoWrapper.limits for every path.",
                    id=W004,
                )
            )
    return warnings


def emits_to_everyone(function: Any) -> bool:
    """Whether ``function``'s code calls ``<a WebSocket>.emit(...)`` on a module-level WebSocket.

    Read from its bytecode: a global name bound to a `~tornado_websockets.websocket.WebSocket`,
    then its ``emit`` attribute (``socket.emit`` and ``ws.to(room).emit`` do not count).
    """
    from tornado_websockets.websocket import WebSocket

    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    if code is None:
        return False
    namespace = getattr(function, "__globals__", {})
    previous: dis.Instruction | None = None
    for instruction in dis.get_instructions(code):
        if (
            previous is not None
            and previous.opname == "LOAD_GLOBAL"
            and instruction.opname in ("LOAD_ATTR", "LOAD_METHOD")
            and instruction.argval == "emit"
            and isinstance(namespace.get(str(previous.argval)), WebSocket)
        ):
            return True
        previous = instruction
    return False
