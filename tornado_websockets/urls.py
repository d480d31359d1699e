"""The AsyncAPI document and the event explorer: ``path("ws-api/", include("tornado_websockets.urls"))``.

``asyncapi.json`` and ``explorer/`` answer in ``DEBUG``, and outside it only to staff users when
``TORNADO["explorer"] = True`` (see `tornado_websockets.explorer`).
"""

from __future__ import annotations

from django.urls import path

from tornado_websockets import explorer

app_name = "tornado_websockets"

urlpatterns = [
    path("asyncapi.json", explorer.asyncapi_json, name="asyncapi"),
    path("explorer/", explorer.explorer, name="explorer"),
]
