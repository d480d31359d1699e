"""The Django origin policy: a browser may connect only from this site's own origins.

Allowed: the request's own host, ``ALLOWED_HOSTS`` (with Django's patterns: ``.example.com``,
``*``), ``CSRF_TRUSTED_ORIGINS`` (``https://*.example.com``), and ``TORNADO['allowed_origins']``.
Everything else is refused with 403 before the upgrade. Pure functions of their arguments.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.http.request import split_domain_port, validate_host

__all__ = ["origin_allowed"]


def origin_allowed(
    origin: str,
    request_host: str,
    allowed_hosts: Iterable[str],
    trusted_origins: Iterable[str] = (),
    extra_origins: Iterable[str] = (),
) -> bool:
    """Whether a WebSocket upgrade with this ``Origin`` header may proceed."""
    parts = urlsplit(origin.lower())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    origin_host = parts.netloc
    if origin_host == request_host.lower():
        return True
    normalized = f"{parts.scheme}://{origin_host}"
    for pattern in (*trusted_origins, *extra_origins):
        if fnmatch.fnmatchcase(normalized, pattern.lower().rstrip("/")):
            return True
    domain, _port = split_domain_port(origin_host)
    hosts = [host for host in allowed_hosts if host != "*"]  # "*" trusts any Host, not any Origin
    return bool(domain) and validate_host(domain, hosts)
