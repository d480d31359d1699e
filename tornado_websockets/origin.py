"""The Django origin policy for WebSocket upgrades: exactly Django's CSRF origin check.

A browser's upgrade is accepted when its ``Origin`` header would pass the origin check of
``CsrfViewMiddleware`` for a form post to the same URL (``_origin_verified`` in
``django/middleware/csrf.py``, the same rule in Django 4.2 and 5.2):

- the request's own origin: its scheme (``https`` when ``request.is_secure()``, which honours
  ``SECURE_PROXY_SSL_HEADER``) and its host (``request.get_host()``: validated against
  ``ALLOWED_HOSTS``, ``X-Forwarded-Host`` with ``USE_X_FORWARDED_HOST``), port included;
- an origin of ``CSRF_TRUSTED_ORIGINS``, exactly (``https://app.example.com``), or by its wildcard
  form (``https://*.example.com``: the domain and every subdomain, that scheme and port only);
- the same for ``TORNADO['allowed_origins']``.

Everything else, another port or scheme of the same host or another host of ``ALLOWED_HOSTS``
included, is refused with 403 before the upgrade. `origin_verified` is a pure function of strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.core.exceptions import DisallowedHost
from django.utils.http import is_same_domain

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = ["good_origin", "origin_verified"]


def good_origin(request: HttpRequest) -> str | None:
    """The request's own origin as Django sees it, or None when its host is not allowed."""
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    return f"{'https' if request.is_secure() else 'http'}://{host}"


def origin_verified(origin: str, own_origin: str | None, trusted_origins: Iterable[str]) -> bool:
    """Whether Django's CSRF origin check accepts ``origin`` for a request whose origin is ``own_origin``.

    ``trusted_origins`` is ``CSRF_TRUSTED_ORIGINS`` (plus ``TORNADO['allowed_origins']``).
    """
    if own_origin is not None and origin == own_origin:
        return True
    trusted = list(trusted_origins)
    if origin in {candidate for candidate in trusted if "*" not in candidate}:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    for candidate in trusted:
        if "*" not in candidate:
            continue
        pattern = urlsplit(candidate)
        if pattern.scheme == parsed.scheme and is_same_domain(parsed.netloc, pattern.netloc.lstrip("*")):
            return True
    return False
