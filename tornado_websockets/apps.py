"""The Django app: autodiscovers ``websockets`` modules and prepares the process for Django."""

from __future__ import annotations

import logging

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

__all__ = ["TornadoWebSocketsConfig"]

logger = logging.getLogger(__name__)


class TornadoWebSocketsConfig(AppConfig):
    """``tornado_websockets`` in ``INSTALLED_APPS``."""

    name = "tornado_websockets"
    verbose_name = "Tornado WebSockets"

    def ready(self) -> None:
        """Register checks and session signals, import each ``websockets`` module, set workers, backplane."""
        from tornado_websockets import (
            checks,  # noqa: F401 - registers the system checks
            sessions,
        )
        from tornado_websockets.conf import tornado_settings
        from tornado_websockets.djangoapp import DjangoExecutor
        from tornado_websockets.tornadowrapper import TornadoWrapper

        conf = tornado_settings()
        if isinstance(conf.threads, int) and conf.threads > 0 and TornadoWrapper.executor is None:
            TornadoWrapper.executor = DjangoExecutor(conf.threads, thread_name_prefix="tornado-websockets")
        if isinstance(conf.backplane, str):
            try:
                TornadoWrapper.use_broker(conf.backplane)
            except ValueError as error:
                # manage.py check reports it (tornado_websockets.E005), and runtornado refuses to
                # start; raising here would stop Django before any check could run.
                logger.error("TORNADO['backplane'] is ignored: %s", error)
        sessions.connect_signals()  # a session's sockets end with the session
        sessions.listen(TornadoWrapper.runtime)  # ... also when another process ends it
        autodiscover_modules("websockets")
        logger.debug("WebSocket paths: %s", sorted(TornadoWrapper.websockets))
