"""The metrics views and the live dashboard (``tornado_websockets.urls``), staff only.

Who may see them, by ``TORNADO["metrics"]``:

- ``None`` (the default): ``metrics.json`` and ``metrics`` answer everyone in ``DEBUG`` (so that
  ``websocket_stats --url`` works in development) and active staff users otherwise;
- ``True``: they answer everyone (a Prometheus scraper does not log in: protect the URLs at your
  proxy or network);
- ``False``: nobody, and the dashboard is off too.

The dashboard page and its WebSocket are for active staff users only, ``DEBUG`` or not. With
``django.contrib.admin`` installed the same dashboard is also a page of the admin,
``/admin/websockets/``, linked from the admin's index (see `tornado_websockets.admin`).

A refused metrics request gets 404, as the explorer's do: a production site does not advertise
its admin URLs. The dashboard page, which the site links to, sends a visitor who is not active
staff to the login page instead (the admin's when it is installed, as ``/admin/websockets/``
does; else ``LOGIN_URL``), and answers 404 only when ``TORNADO["metrics"]`` is False. Without
prometheus-client, ``metrics`` answers 501 naming the extra to install.

The dashboard's page updates over a WebSocket of its own, ``/tws-dashboard``, registered by
the first request to the page (so that projects that never open it serve no such path), whose
guard refuses non-staff users with 403 and which pushes `tornado_websockets.metrics.snapshot`
every second while any client is connected.
"""

from __future__ import annotations

import contextlib
import logging

import tornado.ioloop
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static

from tornado_websockets import metrics, protocol
from tornado_websockets.conf import tornado_settings
from tornado_websockets.server import Server, default_server
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

__all__ = [
    "DASHBOARD_PATH",
    "PUSH_INTERVAL",
    "admin_dashboard",
    "dashboard",
    "is_staff",
    "metrics_allowed",
    "metrics_json",
    "metrics_text",
    "register",
]

logger = logging.getLogger(__name__)

#: The path of the dashboard's own WebSocket.
DASHBOARD_PATH = "/tws-dashboard"
#: Seconds between two snapshots pushed to the dashboard's clients.
PUSH_INTERVAL = 1.0
#: The event that carries a snapshot.
METRICS_EVENT = protocol.METRICS_EVENT


def is_staff(user: object) -> bool:
    """Whether ``user`` is an active staff user (False for None and anonymous users)."""
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


def metrics_allowed(request: HttpRequest) -> bool:
    """Whether ``request`` may read ``metrics.json`` and ``metrics`` (see the module's rules)."""
    setting = tornado_settings().metrics
    if setting is False:
        return False
    return setting is True or settings.DEBUG or is_staff(getattr(request, "user", None))


def _dashboard_allowed(request: HttpRequest) -> bool:
    return tornado_settings().metrics is not False and is_staff(getattr(request, "user", None))


def metrics_json(request: HttpRequest) -> JsonResponse:
    """This process's `tornado_websockets.metrics.snapshot` as JSON; with ``?processes=all``,
    `tornado_websockets.metrics.everywhere`, every server process added up."""
    if not metrics_allowed(request):
        raise Http404("No metrics here.")
    if request.GET.get("processes") == "all":
        try:
            data = metrics.everywhere()
        except RuntimeError as error:
            return JsonResponse({"error": str(error)}, status=400)
    else:
        data = metrics.snapshot()
    return JsonResponse(data, json_dumps_params={"indent": 2, "allow_nan": False})  # RFC 8259


def metrics_text(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of this process (the ``metrics`` extra)."""
    if not metrics_allowed(request):
        raise Http404("No metrics here.")
    try:
        from tornado_websockets import prometheus  # the optional prometheus_client, only when asked
    except ImportError as error:
        return HttpResponse(f"{error}\n", status=501, content_type="text/plain; charset=utf-8")
    return HttpResponse(prometheus.render(), content_type=prometheus.CONTENT_TYPE)


def dashboard(request: HttpRequest) -> HttpResponse:
    """The live dashboard page; its script reads the snapshots from the ``/tws-dashboard`` socket."""
    if tornado_settings().metrics is False:
        raise Http404("No dashboard here.")
    if not _dashboard_allowed(request):
        return _to_login(request)
    # The site's root, below the prefix a proxy may mount the site under: the page's link back.
    home = request.META.get("SCRIPT_NAME", "").rstrip("/") + "/"
    return _render_dashboard(request, "tornado_websockets/dashboard.html", {"home": home})


def _to_login(request: HttpRequest) -> HttpResponse:
    """To the login page: the admin's when installed (it tells a non-staff user why), else ``LOGIN_URL``."""
    from django.contrib.auth.views import redirect_to_login
    from django.urls import NoReverseMatch, reverse

    login_url = None
    if "django.contrib.admin" in settings.INSTALLED_APPS:
        with contextlib.suppress(NoReverseMatch):  # the admin is installed but not in the URLconf
            login_url = reverse("admin:login")
    return redirect_to_login(request.get_full_path(), login_url)


def admin_dashboard(request: HttpRequest) -> HttpResponse:
    """The dashboard as a page of the Django admin, at ``/admin/websockets/`` (`tornado_websockets.admin`).

    The admin's ``admin_view`` wraps it: visitors who are not active staff go to its login page.
    """
    from django.contrib import admin

    if tornado_settings().metrics is False:
        raise Http404("No dashboard here.")
    context = {**admin.site.each_context(request), "title": "WebSocket dashboard"}
    return _render_dashboard(request, "tornado_websockets/admin_dashboard.html", context)


def _render_dashboard(request: HttpRequest, template: str, context: dict[str, object]) -> HttpResponse:
    # The view runs in a worker thread: the registration (which touches the application's
    # handlers) goes to the loop, queued before this response is written, so the page's socket
    # finds its path. Without a running server (Django's test client) it happens here.
    if not default_server().call_in_loop(register):
        register()
    config = {"path": DASHBOARD_PATH, "client": static("tornado_websockets/client.js")}
    return render(request, template, {**context, "config": config})


class _Pusher:
    """Sends a snapshot to every dashboard client each `PUSH_INTERVAL`, while there is one."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.callback: tornado.ioloop.PeriodicCallback | None = None

    def opened(self, socket: WebSocketHandler) -> None:
        socket.emit(METRICS_EVENT, self.websocket.server.snapshot())  # at once, not a second later
        if self.callback is None:
            self.callback = tornado.ioloop.PeriodicCallback(self.push, PUSH_INTERVAL * 1000)
            self.callback.start()
            logger.debug("Dashboard push started")

    def closed(self) -> None:
        if not self.websocket.handlers and self.callback is not None:
            self.callback.stop()
            self.callback = None
            logger.debug("Dashboard push stopped")

    def push(self) -> None:
        if not self.websocket.handlers:
            self.closed()
            return
        # This process's clients only: the snapshot is this process's, not the other processes'.
        self.websocket.broadcast(protocol.encode_emit(METRICS_EVENT, self.websocket.server.snapshot()))


def register(server: Server | None = None) -> WebSocket:
    """The dashboard's `WebSocket` on ``server`` (the default server), registered on first call
    (idempotent); call on the server loop."""
    server = server if server is not None else default_server()
    existing = server.websocket_for(DASHBOARD_PATH)
    if existing is not None:
        return existing
    websocket = WebSocket(DASHBOARD_PATH, server=server)
    websocket.documented = False  # the library's own path: not part of the project's API
    pusher = _Pusher(websocket)
    websocket.state.pusher = pusher

    @websocket.guard
    async def staff_only(socket: WebSocketHandler) -> bool:
        """Refuse (403) anyone who is not an active staff user, and everyone with metrics off."""
        return tornado_settings().metrics is not False and is_staff(getattr(socket, "user", None))

    @websocket.on(name="open")
    async def started(socket: WebSocketHandler) -> None:
        """Send a snapshot at once, and start the periodic push."""
        pusher.opened(socket)

    @websocket.on(name="close")
    async def stopped() -> None:
        """Stop the periodic push with the last client."""
        pusher.closed()

    websocket.emits(METRICS_EVENT, None, "This process's metrics snapshot, every second.")
    return websocket
