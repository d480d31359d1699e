"""The Django origin policy as a pure function."""

from __future__ import annotations

import pytest

from tornado_websockets.origin import origin_allowed

HOSTS = ["example.com", ".sub.test", "*"]
TRUSTED = ["https://*.trusted.test", "https://partner.test:8443"]


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("https://example.com", "internal:8000", True),
        ("https://a.sub.test", "internal", True),
        ("https://x.trusted.test", "internal", True),
        ("https://partner.test:8443", "internal", True),
        ("https://partner.test", "internal", False),
        ("https://evil.test", "internal", False),  # "*" in ALLOWED_HOSTS trusts hosts, not origins
        ("https://example.com.evil.test", "internal", False),
        ("null", "internal", False),
        ("file://", "internal", False),
        ("https://extra.test", "internal", False),
    ],
)
def test_origin_allowed(origin: str, host: str, allowed: bool) -> None:
    assert origin_allowed(origin, host, HOSTS, TRUSTED) is allowed


def test_extra_origins_relax_explicitly() -> None:
    assert origin_allowed("https://extra.test", "internal", HOSTS, TRUSTED, ["https://extra.test"])
