"""The WSGI container: every request answered, streamed bodies streamed, nothing left open.

Against a real ``runtornado`` process over raw sockets (what curl or a browser sends), and with a
user's own ``tornado.web.Application`` around a plain WSGI application.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
import tornado.testing
import tornado.web

from tests.polling import wait_until
from tests.serving import Served, migrated, runtornado, serving_env
from tornado_websockets.testing import WebSocketTestClient
from tornado_websockets.wsgi import SERVER_ERROR_BODY, WSGIContainer

TRAVERSALS = [
    "/static/%2e%2e/%2e%2e/x",
    "/static/../../etc/passwd",
    "/static/%2e%2e%2f%2e%2e%2fetc/passwd",
    "/static/djangotestapp/../../../../etc/passwd",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = migrated(tmp_path_factory.mktemp("serving") / "db.sqlite3")
    with runtornado(env) as server:
        yield server


@pytest.fixture(scope="module")
def served_without_debug(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = serving_env(tmp_path_factory.mktemp("nodebug") / "db.sqlite3", SERVING_DEBUG="0")
    with runtornado(env) as server:
        yield server


async def raw(port: int, path: str, headers: str = "", timeout: float = 15.0) -> tuple[str, bytes]:
    """Send one GET as curl --path-as-is does and read until the server closes; (head, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Connection: close\r\n\r\n"
        writer.write(request.encode("latin-1"))
        data = await asyncio.wait_for(reader.read(), timeout)  # reads to EOF: the server must close
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def status(head: str) -> int:
    return int(head.split(" ", 2)[1])


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_traversal_urls_get_an_answer(served: Served, path: str) -> None:
    head, _ = await raw(served.port, path)
    assert status(head) in (404, 500), head  # answered, whichever way Django's handler goes
    assert "Content-Length" in head or "Transfer-Encoding" in head


async def test_an_exception_escaping_django_is_a_500_with_its_traceback_in_debug(served: Served) -> None:
    # A raising request_started receiver escapes Django's handler (a static path that leaves the
    # static folders no longer does: it is a 404, see tests/test_djangoapp.py).
    head, body = await raw(served.port, "/release/", headers="X-Boom: 1\r\n")
    assert status(head) == 500
    assert b"Traceback" in body  # DEBUG: Django's page would show the traceback too


async def test_without_debug_a_500_shows_no_traceback(served_without_debug: Served) -> None:
    # Without DEBUG there are no static files: the raising request_started receiver escapes Django.
    head, body = await raw(served_without_debug.port, "/release/", headers="X-Boom: 1\r\n")
    assert status(head) == 500
    assert body == SERVER_ERROR_BODY
    assert b"Traceback" not in body


async def test_a_raising_request_started_receiver_is_a_500(served: Served) -> None:
    head, body = await raw(served.port, "/release/", headers="X-Boom: 1\r\n")
    assert status(head) == 500
    assert b"request_started receiver failed" in body


async def test_a_stream_failing_before_its_first_chunk_is_a_500(served: Served) -> None:
    head, body = await raw(served.port, "/broken-first/")
    assert status(head) == 500
    assert b"before its first chunk" in body


async def test_a_stream_failing_half_way_ends_the_response_by_closing(served: Served) -> None:
    head, body = await raw(served.port, "/broken-stream/")
    assert status(head) == 200
    assert "Transfer-Encoding: chunked" in head
    assert b"partial" in body
    # The connection closed without the last chunk: no client takes it for a whole body.
    assert not body.endswith(b"0\r\n\r\n")
    with pytest.raises(tornado.httpclient.HTTPClientError):
        # Tornado's client, as any HTTP client, reports the truncated body as an error.
        await tornado.httpclient.AsyncHTTPClient().fetch(served.base + "/broken-stream/")
    with pytest.raises(http.client.IncompleteRead):  # and so does the standard library's
        await asyncio.to_thread(_read_all, served.base + "/broken-stream/")


def _read_all(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=15) as answer:
        return bytes(answer.read())


async def test_a_streamed_response_goes_out_as_it_is_produced(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(b"GET /stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        # The view now waits for /release/ before its second chunk: the first must arrive before.
        received = await asyncio.wait_for(reader.readuntil(b"first\n"), 10)
        assert b"second" not in received
        await tornado.httpclient.AsyncHTTPClient().fetch(served.base + "/release/")
        rest = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert b"second\n" in rest
    assert rest.endswith(b"0\r\n\r\n")


def _peak_rss_mb(pid: int) -> float:
    status_text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status_text)
    assert match is not None
    return int(match[1]) / 1024


def _download(url: str) -> int:
    total = 0
    with urllib.request.urlopen(url, timeout=60) as answer:
        while block := answer.read(1 << 20):
            total += len(block)
    return total


async def test_a_large_stream_is_not_held_in_memory(served: Served) -> None:
    await asyncio.to_thread(_download, served.base + "/big/?mb=1")  # warm the view up
    before = _peak_rss_mb(served.process.pid)
    size = await asyncio.to_thread(_download, served.base + "/big/?mb=200")
    assert size == 200 * 1024 * 1024
    growth = _peak_rss_mb(served.process.pid) - before
    # Collected whole, as tornado.wsgi.WSGIContainer does, 200 MB would need 200 MB or more.
    assert growth < 50, f"the server's peak memory grew by {growth:.0f} MB for a 200 MB body"


async def test_a_head_request_gets_headers_only(served: Served) -> None:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        served.base + "/static/djangotestapp/hello.txt", method="HEAD"
    )
    assert response.code == 200
    assert response.body == b""
    assert response.headers["Content-Length"] == str(len(b"static hello\n"))


async def test_a_file_response_is_served_whole(served: Served) -> None:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        served.base + "/static/djangotestapp/hello.txt"
    )
    assert response.body == b"static hello\n"


BAD = ["/static/%2e%2e/%2e%2e/x", "/broken-stream/", "/broken-first/", ("/release/", "X-Boom: 1\r\n")]


async def test_fifty_bad_requests_at_once_leave_nothing_open(served: Served) -> None:
    async def one(index: int) -> str:
        target = BAD[index % len(BAD)]
        path, headers = target if isinstance(target, tuple) else (target, "")
        head, _ = await raw(served.port, path, headers)
        return head

    await asyncio.gather(*(one(index) for index in range(len(BAD))))  # threads and files warmed up
    baseline = served.open_fds()
    heads = await asyncio.gather(*(one(index) for index in range(50)))
    assert all(status(head) in (200, 404, 500) for head in heads)  # each answered (or cut after its head)
    await wait_until(lambda: served.open_fds() <= baseline, timeout=15)


# A user's own Application around a plain WSGI application ------------------------------------


def app_without_start_response(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    return [b"no headers"]


def app_raising(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise ValueError("raised by the application")


def app_with_exc_info(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise KeyError("late")
    except KeyError:
        import sys

        start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"replaced"]


def app_hello(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b""
    yield environ["REMOTE_ADDR"].encode() + b" " + environ["wsgi.url_scheme"].encode()


class ContainerInAUsersApplication(tornado.testing.AsyncHTTPTestCase):
    def get_app(self) -> tornado.web.Application:
        self.executor = concurrent.futures.ThreadPoolExecutor(2)
        return tornado.web.Application(
            [
                (
                    path,
                    tornado.web.FallbackHandler,
                    {"fallback": WSGIContainer(app, self.executor, debug=debug)},
                )
                for path, app, debug in [
                    ("/none", app_without_start_response, lambda: False),
                    ("/raise", app_raising, lambda: True),
                    ("/exc-info", app_with_exc_info, lambda: False),
                    ("/hello", app_hello, lambda: False),
                ]
            ]
        )

    def tearDown(self) -> None:
        super().tearDown()
        self.executor.shutdown()

    def test_an_application_that_never_starts_the_response_gets_a_500(self) -> None:
        response = self.fetch("/none")
        assert (response.code, response.body) == (500, SERVER_ERROR_BODY)

    def test_a_raising_application_gets_a_500_with_its_traceback_in_debug(self) -> None:
        response = self.fetch("/raise")
        assert response.code == 500
        assert b"ValueError: raised by the application" in response.body

    def test_start_response_with_exc_info_replaces_the_status_before_the_headers_go(self) -> None:
        response = self.fetch("/exc-info")
        assert (response.code, response.body) == (503, b"replaced")

    def test_a_generator_body_is_chunked_and_sees_the_client(self) -> None:
        response = self.fetch("/hello")
        assert response.code == 200
        assert response.body == b"127.0.0.1 http"


# Strict JSON from the package's own endpoints (RFC 8259: no NaN, no Infinity) ---------------------


def _strict(constant: str) -> None:
    raise AssertionError(f"{constant} in a JSON document")


async def test_metrics_and_asyncapi_are_strict_json(served: Served) -> None:
    client = await WebSocketTestClient.connect(f"ws://127.0.0.1:{served.port}/ws/who")
    assert await client.request("whoami") == ""  # one latency observation at least
    client.close()
    http = tornado.httpclient.AsyncHTTPClient()
    metrics = json.loads(
        (await http.fetch(served.base + "/ws-api/metrics.json")).body, parse_constant=_strict
    )
    buckets = metrics["paths"]["/who"]["latency"]["buckets"]
    assert buckets[-1][0] == "+Inf"
    assert buckets[-1][1] >= 1
    json.loads((await http.fetch(served.base + "/ws-api/asyncapi.json")).body, parse_constant=_strict)


async def test_a_client_leaving_mid_stream_releases_the_stream(served: Served) -> None:
    await asyncio.to_thread(_download, served.base + "/big/?mb=1")
    baseline = served.open_fds()
    for _ in range(20):  # more than the 16 view threads
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(b"GET /big/?mb=500 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await asyncio.wait_for(reader.readexactly(1 << 20), 15)  # the stream is flowing
        writer.transport.abort()  # gone without reading the other 499 MB
    await wait_until(lambda: served.open_fds() <= baseline, timeout=15)
    # The view threads were given back: a request that needs one is answered.
    head, _ = await raw(served.port, "/release/")
    assert status(head) == 200
