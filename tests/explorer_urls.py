"""A URLconf and template settings for the explorer's tests: the package's URLs included as the docs say."""

from __future__ import annotations

from typing import Any

from django.urls import include, path

urlpatterns = [path("ws-api/", include("tornado_websockets.urls"))]

#: The suite's settings have no template engine; the explorer's page needs one reading app folders.
TEMPLATES: list[dict[str, Any]] = [
    {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
]
