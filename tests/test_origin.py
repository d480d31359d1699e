"""The Django origin policy: Django's own CSRF origin rule, as a pure function and on real servers.

Django's ``CsrfViewMiddleware._origin_verified`` is the oracle: for every case the policy must
answer what Django answers for a form post to the same URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import tornado.httpclient
from django.middleware.csrf import CsrfViewMiddleware
from django.test import RequestFactory, override_settings

from tests.serving import Served, runtornado, serving_env
from tornado_websockets.origin import good_origin, origin_verified
from tornado_websockets.testing import WebSocketTestClient, serve
from tornado_websockets.websocket import WebSocket

TRUSTED = ["https://*.trusted.test", "https://partner.test:8443", "http://exact.test"]
HOSTS = ["127.0.0.1", "localhost", ".example.test", "site.test"]

CASES = [
    # (origin, Host header, secure, allowed)
    ("http://127.0.0.1:8000", "127.0.0.1:8000", False, True),  # the page's own origin
    ("http://127.0.0.1:8131", "127.0.0.1:8000", False, False),  # another port: another origin
    ("https://127.0.0.1:8000", "127.0.0.1:8000", False, False),  # another scheme
    ("http://127.0.0.1:8000", "127.0.0.1:8000", True, False),  # http page, https server
    ("https://site.test", "site.test", True, True),
    ("http://localhost:8000", "127.0.0.1:8000", False, False),  # another host of ALLOWED_HOSTS
    ("https://www.example.test", "site.test", True, False),  # an ALLOWED_HOSTS pattern is no origin
    ("https://app.trusted.test", "site.test", True, True),  # CSRF_TRUSTED_ORIGINS wildcard
    ("https://trusted.test", "site.test", True, True),  # the wildcard's own domain
    ("http://app.trusted.test", "site.test", False, False),  # the wildcard's scheme only
    ("https://app.trusted.test:444", "site.test", True, False),  # and its port only
    ("https://partner.test:8443", "site.test", True, True),  # exact
    ("https://partner.test", "site.test", True, False),
    ("http://exact.test", "site.test", True, True),
    ("https://trusted.test.evil.test", "site.test", True, False),
    ("https://eviltrusted.test", "site.test", True, False),
    ("null", "site.test", True, False),
    ("file://", "site.test", True, False),
    ("http://evil.test", "evil.test", False, False),  # a Host not in ALLOWED_HOSTS
    ("http://[::1", "site.test", False, False),  # unparsable
]


def django_accepts(origin: str, host: str, secure: bool) -> bool:
    request = RequestFactory().post("/", HTTP_HOST=host, HTTP_ORIGIN=origin, secure=secure)
    return bool(CsrfViewMiddleware(lambda request: None)._origin_verified(request))  # type: ignore[arg-type]


@pytest.mark.parametrize(("origin", "host", "secure", "allowed"), CASES)
def test_the_policy_answers_what_django_answers(origin: str, host: str, secure: bool, allowed: bool) -> None:
    with override_settings(ALLOWED_HOSTS=HOSTS, CSRF_TRUSTED_ORIGINS=TRUSTED):
        request = RequestFactory().get("/", HTTP_HOST=host, secure=secure)
        assert origin_verified(origin, good_origin(request), TRUSTED) is allowed
        assert django_accepts(origin, host, secure) is allowed


@override_settings(ALLOWED_HOSTS=HOSTS, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_the_scheme_follows_secure_proxy_ssl_header() -> None:
    behind_tls = RequestFactory().get("/", HTTP_HOST="site.test", HTTP_X_FORWARDED_PROTO="https")
    assert good_origin(behind_tls) == "https://site.test"
    plain = RequestFactory().get("/", HTTP_HOST="site.test", HTTP_X_FORWARDED_PROTO="http")
    assert good_origin(plain) == "http://site.test"


@override_settings(ALLOWED_HOSTS=HOSTS, USE_X_FORWARDED_HOST=True)
def test_the_host_follows_use_x_forwarded_host() -> None:
    proxied = RequestFactory().get("/", HTTP_HOST="internal:8000", HTTP_X_FORWARDED_HOST="site.test")
    assert good_origin(proxied) == "http://site.test"


# A real server, in this process (the test's own settings) --------------------------------------


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:{port}", True),  # the page's own origin
        ("http://127.0.0.1:8131", False),  # the page on another port
        ("http://localhost:{port}", False),  # another host of ALLOWED_HOSTS
        ("https://www.example.test", False),  # ALLOWED_HOSTS pattern .example.test
        ("https://app.trusted.test", True),  # CSRF_TRUSTED_ORIGINS https://*.trusted.test
        ("http://app.trusted.test", False),
        ("https://evil.test", False),
        ("null", False),
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
    settings.TORNADO = {"allowed_origins": ["https://partner.test", "https://*.apps.test"]}
    WebSocket("/page")
    async with serve(django=True) as server:
        for origin in ("https://partner.test", "https://a.apps.test"):
            async with server.connect("/page", headers={"Origin": origin}):
                pass
        with pytest.raises(tornado.httpclient.HTTPClientError):
            await server.connect("/page", headers={"Origin": "http://a.apps.test"})


async def test_behind_a_tls_proxy_the_https_page_is_its_own_origin(settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    WebSocket("/page")
    async with serve(django=True) as server:
        own = f"https://127.0.0.1:{server.port}"
        async with server.connect("/page", headers={"Origin": own, "X-Forwarded-Proto": "https"}):
            pass
        with pytest.raises(tornado.httpclient.HTTPClientError):
            await server.connect("/page", headers={"Origin": own})  # no header: an http request


async def test_standalone_tornado_keeps_the_same_origin_default() -> None:
    WebSocket("/plain")
    async with serve() as server:
        with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
            await server.connect("/plain", headers={"Origin": "http://localhost:9999"})
        assert caught.value.code == 403
        async with server.connect("/plain", headers={"Origin": f"http://127.0.0.1:{server.port}"}):
            pass


# A real runtornado process -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = serving_env(tmp_path_factory.mktemp("origin") / "db.sqlite3")
    with runtornado(env) as server:
        yield server


async def upgrade_status(served: Served, origin: str) -> int:
    try:
        client = await WebSocketTestClient.connect(
            f"ws://127.0.0.1:{served.port}/ws/who", headers={"Origin": origin}, timeout=10
        )
    except tornado.httpclient.HTTPClientError as error:
        return error.code
    client.close()
    return 101


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("http://127.0.0.1:{port}", 101),
        ("http://127.0.0.1:8131", 403),
        ("http://localhost:{port}", 403),
        ("https://127.0.0.1:{port}", 403),
        ("https://x.trusted.test", 101),
        ("https://x.trusted.test.evil.test", 403),
    ],
)
async def test_runtornado_applies_djangos_rule(served: Served, origin: str, status: int) -> None:
    assert await upgrade_status(served, origin.format(port=served.port)) == status


@pytest.mark.parametrize("fetch_site", ["same-origin", None])
async def test_a_host_outside_allowed_hosts_is_refused_even_same_origin(
    served: Served, fetch_site: str | None
) -> None:
    # DNS rebinding: the attacker's name resolves to the server; the browser calls it same-origin.
    headers = {"Host": "rebind.evil.test", "Origin": "http://rebind.evil.test"}
    if fetch_site is not None:
        headers["Sec-Fetch-Site"] = fetch_site
    with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
        await WebSocketTestClient.connect(f"ws://127.0.0.1:{served.port}/ws/who", headers=headers, timeout=10)
    assert caught.value.code == 403
