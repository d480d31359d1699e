"""``manage.py runtornado [addrport]``: Django, static files (in DEBUG) and every WebSocket on one port."""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from django.utils import autoreload

from tornado_websockets import reloader
from tornado_websockets.conf import tornado_settings
from tornado_websockets.loops import LOOP_NAMES, UVLOOP_MISSING, asyncio_loop_of, loop_available
from tornado_websockets.tornadowrapper import TornadoWrapper

logger = logging.getLogger("tornado_websockets.runtornado")

ADDRPORT = re.compile(r"^(?:(?P<addr>\[[0-9a-fA-F:]+\]|[0-9.]+|[a-zA-Z0-9.-]+):)?(?P<port>[^:]+)$")


class Command(BaseCommand):
    """Serve the project with Tornado, as ``runserver`` does with Django's development server."""

    help = (
        "Serve Django, its static files in DEBUG and every registered WebSocket on one port with "
        "Tornado. Views run in a thread pool, so a slow view never delays WebSocket traffic. With "
        "--processes N, several processes share the port; that needs a cross-process backplane "
        "(TORNADO['backplane'] = 'redis://...'): with the in-process one emits stay inside one "
        "process, so N > 1 is refused."
    )
    requires_system_checks: list[str] = []  # checked in inner_run, after the reloader forks
    default_addr = "127.0.0.1"

    def add_arguments(self, parser: CommandParser) -> None:
        """The port (or ``addr:port``) and the options."""
        parser.add_argument("addrport", nargs="?", help="Port, or addr:port, to listen on.")
        parser.add_argument("--noreload", action="store_false", dest="use_reloader", help="No autoreload.")
        parser.add_argument(
            "--view-threads",
            type=int,
            help=(
                "Worker threads for Django views (default: TORNADO['view_threads'], 16 if unset). "
                "Event functions have their own pool: TORNADO['threads']."
            ),
        )
        # The name until 1.0, which read as the event functions' threads: kept, with a warning.
        parser.add_argument("--threads", type=int, dest="old_threads", help="Deprecated: --view-threads.")
        parser.add_argument(
            "--xheaders",
            action="store_true",
            default=None,
            help="Trust X-Forwarded-For/-Proto and X-Real-Ip (default: TORNADO['xheaders'], off). "
            "Only behind a proxy that sets them: otherwise any client can pick its own address.",
        )
        parser.add_argument(
            "--loop",
            choices=LOOP_NAMES,
            help="The event loop (default: TORNADO['loop'], 'asyncio' if unset); 'uvloop' needs the "
            "uvloop extra.",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="Processes sharing the port (default 1); more need --noreload and a Redis backplane.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Check the arguments, then run (under the autoreloader in DEBUG)."""
        if not settings.DEBUG and not settings.ALLOWED_HOSTS:
            raise CommandError("You must set settings.ALLOWED_HOSTS if DEBUG is False.")
        self.addr, self.port = self.parse_addrport(options["addrport"])
        if options.get("old_threads") is not None:
            message = (
                "runtornado --threads is deprecated: use --view-threads, the worker threads for "
                "Django views (TORNADO['threads'] sets those of the event functions)."
            )
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            self.stderr.write(message)
            if options.get("view_threads") is None:
                options["view_threads"] = options["old_threads"]
        if options.get("view_threads") is not None and options["view_threads"] < 1:
            raise CommandError("--view-threads should be at least 1.")
        if options["processes"] < 1:
            raise CommandError("--processes should be at least 1.")
        loop = options.get("loop") or tornado_settings().loop
        if not loop_available(loop):
            asked = "--loop" if options.get("loop") else "TORNADO['loop']"
            raise CommandError(f"{asked} is {loop!r}. {UVLOOP_MISSING}")
        options["loop"] = loop
        if options["processes"] > 1 and options["use_reloader"] and settings.DEBUG:
            raise CommandError(
                "--processes > 1 needs --noreload: the autoreloader restarts a single process."
            )
        if options["processes"] > 1 and not TornadoWrapper.broker.cross_process:
            raise CommandError(
                "--processes > 1 needs a cross-process backplane: with the in-process one, an emit "
                "reaches only the clients of the process that made it. Set "
                "TORNADO['backplane'] = 'redis://127.0.0.1:6379/0' (pip install "
                "'django-tornado-websockets[redis]')."
            )
        self.run(**options)

    def parse_addrport(self, addrport: str | None) -> tuple[str, int]:
        """``"8000"``, ``"0.0.0.0:8000"`` or ``"[::1]:8000"``; a bad one is a `CommandError` (exit 1)."""
        if not addrport:
            return self.default_addr, tornado_settings().port
        match = ADDRPORT.match(addrport)
        if match is None or not match["port"].isdigit() or not 0 < int(match["port"]) < 65536:
            raise CommandError(f'"{addrport}" is not a valid port number or address:port pair.')
        addr = (match["addr"] or self.default_addr).strip("[]")
        return addr, int(match["port"])

    def run(self, **options: Any) -> None:
        """Run the server, under the autoreloader when asked and in DEBUG (as runserver does)."""
        _log_to_console()
        if options["use_reloader"] and settings.DEBUG:
            reloader.run_with_reloader(self.inner_run, **options)
        else:
            self.inner_run(**options)

    def inner_run(self, *args: Any, **options: Any) -> None:
        """Check the project, build the application, listen, and loop until a signal."""
        autoreload.raise_last_exception()
        self.check(display_num_errors=False)
        self.check_migrations()
        from tornado_websockets import djangoapp

        conf = tornado_settings()
        threads = options.get("view_threads") or conf.view_threads
        handlers = [*conf.handlers, djangoapp.django_app(threads)]
        TornadoWrapper.start_app(handlers, djangoapp.application_settings(conf))
        TornadoWrapper.use_loop(options.get("loop") or conf.loop)
        processes = options.get("processes", 1)
        xheaders = bool(options.get("xheaders") or conf.xheaders)
        if xheaders:
            logger.info("Trusting X-Forwarded-For/-Proto and X-Real-Ip: only a proxy may reach this port")
        try:
            if processes > 1:
                # The checks above opened a database connection; a forked process must not share
                # its socket (or SQLite file handle) with its siblings: each opens its own.
                connections.close_all()
                TornadoWrapper.fork(self.port, self.addr, processes, xheaders=xheaders)
            else:
                TornadoWrapper.listen(self.port, self.addr, xheaders=xheaders)
        except OSError as error:
            # As runserver does: from the reloader's server thread an exception would only be
            # stored, and the process would keep watching files while serving nothing.
            self.stderr.write(f"Error: cannot listen on {self.addr}:{self.port}: {error.strerror or error}")
            os._exit(1)
        self.on_bind()
        TornadoWrapper.install_signal_handlers()
        TornadoWrapper.loop()

    def on_bind(self) -> None:
        """Say where the server listens and which WebSocket paths are live."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        logger.info("Serving Django and WebSockets at http://%s:%s/ (Ctrl-C to quit)", host, self.port)
        io_loop = TornadoWrapper.io_loop
        if io_loop is not None:
            loop = asyncio_loop_of(io_loop)
            logger.info("Event loop: %s.%s", type(loop).__module__, type(loop).__qualname__)
        for path in sorted(TornadoWrapper.websockets):
            logger.info("WebSocket ws://%s:%s/ws%s", host, self.port, path)


def _log_to_console() -> None:
    """Show our INFO lines as runserver shows its own, unless logging is configured for them."""
    package = logging.getLogger("tornado_websockets")
    if package.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    package.addHandler(handler)
    package.setLevel(logging.INFO)
