"""Django served by Tornado: the WSGI fallback, static files in DEBUG, and the application settings.

Views run in a thread pool (see `tornado_websockets.wsgi`), so a slow view never delays
WebSocket traffic, every request gets an answer and streamed responses go out chunk by chunk;
plain ``def`` event functions run in another pool whose threads close stale database
connections around each call, as Django does around requests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import tornado.httputil
import tornado.web
from django.conf import settings
from django.http import HttpRequest

from tornado_websockets import auth, origin, wsgi
from tornado_websockets.conf import TornadoSettings, tornado_settings
from tornado_websockets.dbconnections import close_old_connections
from tornado_websockets.websockethandler import CONNECT_HOOK_SETTING, ORIGIN_CHECK_SETTING, WebSocketHandler
from tornado_websockets.workers import DEFAULT_WORKERS, WorkerPool

__all__ = ["DjangoExecutor", "application_settings", "django_app", "handlers", "origin_allowed"]


class DjangoExecutor(WorkerPool):
    """Worker threads whose calls close stale database connections before and after they run."""

    def __init__(
        self, max_workers: int = DEFAULT_WORKERS, thread_name_prefix: str = "tornado-websockets"
    ) -> None:
        super().__init__(max_workers, thread_name_prefix, around=_with_fresh_connections)


def _with_fresh_connections(fn: Callable[[], Any]) -> Any:
    close_old_connections()
    try:
        return fn()
    finally:
        close_old_connections()


@functools.cache
def _view_executor(threads: int) -> DjangoExecutor:
    return DjangoExecutor(threads, thread_name_prefix="django-views")


def django_app(threads: int | None = None) -> tuple[str, type[tornado.web.FallbackHandler], dict[str, Any]]:
    """The catch-all handler spec serving Django (and, in ``DEBUG``, the static files).

    It is a catch-all: `TornadoWrapper.start_app` keeps it after every other handler.
    """
    from django.core.wsgi import get_wsgi_application

    application: Any = get_wsgi_application()
    if settings.DEBUG and "django.contrib.staticfiles" in settings.INSTALLED_APPS:
        application = _static_files_handler()(application)
    if threads is None:
        threads = tornado_settings().view_threads
    container = wsgi.WSGIContainer(
        _trimmed_headers(application), _view_executor(threads), debug=lambda: bool(settings.DEBUG)
    )
    return (r".*", tornado.web.FallbackHandler, {"fallback": container})


def _static_files_handler() -> type[Any]:
    """Django's ``StaticFilesHandler``, answering 404 to a path that leaves the static folders.

    Its finders raise ``SuspiciousFileOperation`` for ``/static/..%2f..%2fsettings.py``, which the
    handler does not catch: a 500 with a traceback naming absolute paths. Django's own static
    ``serve`` view answers such a path as not found, and so does this.
    """
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.exceptions import SuspiciousFileOperation
    from django.http import Http404

    class StaticFiles(StaticFilesHandler):
        def serve(self, request: HttpRequest) -> Any:
            try:
                return super().serve(request)
            except SuspiciousFileOperation:
                raise Http404("No such static file.") from None

    return StaticFiles


def _trimmed_headers(application: Any) -> Callable[..., Any]:
    """Strip the space Django puts before each ``Set-Cookie`` value.

    Django's WSGI handler emits ``cookie.output(header="")``, which starts with a space; Tornado
    (6.5 and later) refuses such a header value, so without this no login would work.
    """

    def trimmed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [(name, value.strip()) for name, value in headers], exc_info)

        return application(environ, start)

    return trimmed


def handlers(conf: TornadoSettings | None = None) -> list[Any]:
    """``TORNADO['handlers']`` followed by `django_app`."""
    conf = conf or tornado_settings()
    return [*conf.handlers, django_app(conf.view_threads)]


def application_settings(conf: TornadoSettings | None = None) -> dict[str, Any]:
    """``TORNADO['settings']`` plus the Django connect hook: origin policy, then user and session.

    The origin policy is Django's CSRF origin check (see `tornado_websockets.origin`), with
    ``TORNADO['allowed_origins']`` trusted as ``CSRF_TRUSTED_ORIGINS`` are.
    """
    conf = conf or tornado_settings()

    async def connect(socket: WebSocketHandler) -> None:
        from django.core.handlers.wsgi import WSGIRequest

        request = WSGIRequest(wsgi.environ(socket.request))  # the upgrade, as Django sees it
        # Django's scheme: https behind a TLS proxy that sets SECURE_PROXY_SSL_HEADER's header.
        socket.request.protocol = request.scheme
        # Here, before the session is read, rather than in Tornado's check_origin: Tornado 6.6
        # accepts an Origin whose host and port equal the Host header, whatever its scheme and
        # whether that host is allowed, without asking check_origin.
        headers = socket.request.headers
        origin_header = headers.get("Origin", headers.get("Sec-Websocket-Origin"))
        if origin_header is not None and not origin_allowed(origin_header, request, conf):
            raise tornado.web.HTTPError(403, reason="Origin not allowed")
        await auth.load_user(socket)

    return {**conf.settings, CONNECT_HOOK_SETTING: connect, ORIGIN_CHECK_SETTING: _checked_by_the_hook}


def origin_allowed(origin_header: str, request: HttpRequest, conf: TornadoSettings | None = None) -> bool:
    """Django's CSRF origin rule for an upgrade request (as Django sees it), plus ``allowed_origins``."""
    conf = conf or tornado_settings()
    trusted = [*getattr(settings, "CSRF_TRUSTED_ORIGINS", []), *conf.allowed_origins]
    return origin.origin_verified(origin_header, origin.good_origin(request), trusted)


def _checked_by_the_hook(origin_header: str, request_host: str) -> bool:
    """Tornado's own origin check, replaced: the connect hook applied Django's rule already."""
    return True
