"""The package's Django URLs: ``path("ws-api/", include("tornado_websockets.urls"))``.

``asyncapi.json`` and ``explorer/`` answer in ``DEBUG``, and outside it only to staff users when
``TORNADO["explorer"] = True`` (see `tornado_websockets.explorer`). ``metrics.json`` and
``metrics`` (Prometheus text) answer in ``DEBUG`` and to staff users, or to everyone with
``TORNADO["metrics"] = True``; ``dashboard/`` to staff users only (see `tornado_websockets.dashboard`).
"""

from __future__ import annotations

from django.urls import path

from tornado_websockets import dashboard, explorer

app_name = "tornado_websockets"

urlpatterns = [
    path("asyncapi.json", explorer.asyncapi_json, name="asyncapi"),
    path("explorer/", explorer.explorer, name="explorer"),
    path("metrics.json", dashboard.metrics_json, name="metrics-json"),
    path("metrics", dashboard.metrics_text, name="metrics"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
]
