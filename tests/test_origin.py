"""The Django origin policy: as a pure function, then on a real server (refused with 403)."""

from __future__ import annotations

from typing import Any

import pytest
import tornado.httpclient

from tornado_websockets.origin import origin_allowed
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket

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


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:{port}", True),  # the page's own origin
        ("http://localhost:9999", True),  # ALLOWED_HOSTS
        ("https://www.example.test", True),  # ALLOWED_HOSTS pattern .example.test
        ("https://app.trusted.test", True),  # CSRF_TRUSTED_ORIGINS https://*.trusted.test
        ("https://evil.test", False),
        ("null", False),
        ("http://example.test.evil.com", False),
    ],
)
async def test_origin_policy(origin: str, allowed: bool) -> None:
    WebSocket("/page")
    async with serve(django=True) as server:
        headers = {"Origin": origin.format(port=server.port)}
        if allowed:
            async with server.connect("/page", headers=headers):
                pass
        else:
            with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
                await server.connect("/page", headers=headers)
            assert caught.value.code == 403


async def test_the_setting_relaxes_the_policy_explicitly(settings: Any) -> None:
    settings.TORNADO = {"allowed_origins": ["https://partner.test"]}
    WebSocket("/page")
    async with (
        serve(django=True) as server,
        server.connect("/page", headers={"Origin": "https://partner.test"}),
    ):
        pass


async def test_standalone_tornado_keeps_the_same_origin_default() -> None:
    WebSocket("/plain")
    async with serve() as server:
        with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
            await server.connect("/plain", headers={"Origin": "http://localhost:9999"})  # allowed with Django
        assert caught.value.code == 403
        async with server.connect("/plain", headers={"Origin": f"http://127.0.0.1:{server.port}"}):
            pass
