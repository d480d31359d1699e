"""Connects a ``request_started`` receiver that raises when asked to (header ``X-Boom``)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started


def explode(sender: Any, environ: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Raise outside Django's exception handling, as a faulty receiver would."""
    if environ is not None and "HTTP_X_BOOM" in environ:
        raise RuntimeError("request_started receiver failed")


class ServingAppConfig(AppConfig):
    name = "tests.servingapp"
    label = "servingapp"

    def ready(self) -> None:
        request_started.connect(explode)
