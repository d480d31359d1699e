"""A WSGI container for Tornado's HTTP server: every request answered, streamed bodies streamed.

It replaces ``tornado.wsgi.WSGIContainer``, which logs an exception escaping the application and
never answers (the connection stays open until the client gives up), and which collects a
streamed body whole in memory before sending it. Here:

- the application and the iteration of its body run in one worker thread of the executor, as a
  threaded WSGI server runs them (Django's database connections are per thread, and a queryset
  streamed by a generator must stay on the thread that opened its cursor);
- an exception escaping the application before the headers were sent becomes a 500 (its
  traceback in the body only when ``debug()`` is true); after the headers were sent it ends the
  response by closing the connection, so the client sees a truncated body, not a hang;
- each chunk goes out when it is produced and the worker waits until it is flushed to the socket
  before asking for the next one (flow control: one chunk in memory, whatever the body's size);
- the body's ``close()`` is always called, in the worker thread, whatever happened.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import traceback
from collections.abc import Callable, Coroutine, Iterable, Iterator
from io import BytesIO
from types import TracebackType
from typing import IO, Any

import tornado.httputil
import tornado.iostream
from tornado.escape import url_unescape
from tornado.log import access_log

__all__ = ["FileWrapper", "WSGIContainer", "environ"]

logger = logging.getLogger(__name__)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: The body of a 500 when the traceback is not shown (as Django's wsgiref-based runserver says).
SERVER_ERROR_BODY = b"A server error occurred. Please contact the administrator.\n"
#: Smallest block a `FileWrapper` reads (Django's ``FileResponse`` asks for 4 KiB).
FILE_BLOCK_SIZE = 64 * 1024
#: Seconds between checks, while a worker waits for a write, that the server loop still runs.
_LOOP_CHECK_INTERVAL = 1.0


class _ClientGoneError(Exception):
    """The client closed the connection, or the server loop stopped, while the body was sent."""


class FileWrapper:
    """``wsgi.file_wrapper``: reads a file in large blocks instead of the application's 4 KiB ones."""

    def __init__(self, filelike: IO[bytes], block_size: int = FILE_BLOCK_SIZE) -> None:
        self.filelike = filelike
        self.block_size = max(block_size, FILE_BLOCK_SIZE)

    def __iter__(self) -> Iterator[bytes]:
        while block := self.filelike.read(self.block_size):
            yield block

    def close(self) -> None:
        """Close the file (Django hooks its response's ``close`` here: ``request_finished``)."""
        self.filelike.close()


class WSGIContainer:
    """Serve a WSGI application on Tornado's HTTP server, as ``tornado.wsgi.WSGIContainer`` does.

    Usable wherever Tornado's is: ``FallbackHandler`` (``{"fallback": container}``) or as the
    ``HTTPServer``'s request callback. ``debug`` tells whether a 500 shows the traceback.
    """

    def __init__(
        self,
        application: WSGIApplication,
        executor: concurrent.futures.Executor,
        debug: Callable[[], bool] = lambda: False,
    ) -> None:
        self.application = application
        self.executor = executor
        self.debug = debug
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, request: tornado.httputil.HTTPServerRequest) -> None:
        """Start answering ``request`` (Tornado's request callback interface)."""
        task = asyncio.ensure_future(self.handle(request))
        self._tasks.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._tasks.discard)

    async def handle(self, request: tornado.httputil.HTTPServerRequest) -> None:
        """Run the application for ``request`` in a worker thread and send what it answers."""
        loop = asyncio.get_running_loop()
        exchange = _Exchange(request, loop, self.debug)
        try:
            await loop.run_in_executor(self.executor, exchange.run, self.application, self.environ(request))
        except Exception:  # a broken executor (shut down): still answer, never leave it open
            logger.exception("Could not run the WSGI application for %s", request.uri)
            exchange.error_response_on_loop(sys.exc_info())  # type: ignore[arg-type]

    def environ(self, request: tornado.httputil.HTTPServerRequest) -> dict[str, Any]:
        """The WSGI environment of ``request`` (PEP 3333)."""
        return environ(request)


def environ(request: tornado.httputil.HTTPServerRequest) -> dict[str, Any]:
    """The WSGI environment of ``request`` (PEP 3333); also how Django sees an upgrade request."""
    host, port = tornado.httputil.split_host_and_port(request.host)
    if port is None:
        port = 443 if request.protocol == "https" else 80
    env: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        # PEP 3333: the undecoded path as latin-1 code points.
        "PATH_INFO": url_unescape(request.path, encoding=None, plus=False).decode("latin-1"),
        "QUERY_STRING": request.query,
        "REMOTE_ADDR": request.remote_ip,  # the client's, behind a proxy with xheaders on
        "SERVER_NAME": host,
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": request.version,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.protocol,
        "wsgi.input": BytesIO(request.body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    for name in request.headers:
        value = ",".join(request.headers.get_list(name))
        if name == "Content-Type":
            env["CONTENT_TYPE"] = value
        elif name == "Content-Length":
            env["CONTENT_LENGTH"] = value
        else:
            env["HTTP_" + name.replace("-", "_").upper()] = value
    return env


class _Exchange:
    """One request's answer: the worker thread's side (`run`) and the loop's (the ``_`` coroutines)."""

    def __init__(
        self,
        request: tornado.httputil.HTTPServerRequest,
        loop: asyncio.AbstractEventLoop,
        debug: Callable[[], bool],
    ) -> None:
        assert request.connection is not None  # a request from the server always has one
        self.request = request
        self.connection = request.connection
        self.loop = loop
        self.debug = debug
        self.head = request.method == "HEAD"
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.written: list[bytes] = []  # what the legacy write() callable was given

    # Worker thread --------------------------------------------------------------------------

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333's ``start_response``: keep the status and headers until the first chunk."""
        if exc_info is not None and self.headers_sent:
            raise exc_info[1].with_traceback(exc_info[2])
        if exc_info is None and self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        self.status, self.headers = status, list(headers)
        return self.written.append

    def run(self, application: WSGIApplication, environ: dict[str, Any]) -> None:
        """Call the application, send its body chunk by chunk, and always close it."""
        body: Iterable[bytes] | None = None
        failure: ExcInfo | None = None
        try:
            body = application(environ, self.start_response)
            self._send(body)
        except _ClientGoneError:
            logger.debug("Client gone before the response to %s was sent", self.request.uri)
        except Exception:
            failure = sys.exc_info()  # type: ignore[assignment]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    failure = failure or sys.exc_info()  # type: ignore[assignment]
        if failure is None and not self.connection_closed():
            try:
                self._call(self._finish())
            except _ClientGoneError:
                pass
            except Exception:  # fewer bytes than its Content-Length said: Tornado closed the stream
                failure = sys.exc_info()  # type: ignore[assignment]
        if failure is not None:
            try:
                self._fail(failure)
            except _ClientGoneError:
                pass
            except Exception:
                logger.exception("Could not answer %s with a 500; closing the connection", self.request.uri)
                self._call_quietly(self._abort())

    def _call_quietly(self, coroutine: Coroutine[Any, Any, None]) -> None:
        try:
            self._call(coroutine)
        except Exception:
            logger.debug("Closing the connection of %s failed", self.request.uri, exc_info=True)

    def _send(self, body: Iterable[bytes]) -> None:
        if self.head and not isinstance(body, (list, tuple)):
            # No body goes out in answer to HEAD: do not produce it (a HEAD of a 1 GB file).
            self._call(self._start(b"", whole=False))
            return
        if isinstance(body, (list, tuple)) or getattr(body, "streaming", None) is False:
            # A body known whole (Django's HttpResponse): it gets a Content-Length.
            self._call(self._start(b"".join([*self.written, *body]), whole=True))
            return
        for chunk in body:
            if not chunk and not self.written:
                continue  # headers wait for the first non-empty chunk (PEP 3333)
            if not self.headers_sent:
                first, self.written = b"".join([*self.written, chunk]), []
                self._call(self._start(first, whole=False))
            else:
                self._call(self._write(chunk))
        if not self.headers_sent:
            self._call(self._start(b"".join(self.written), whole=False))

    def _fail(self, failure: ExcInfo) -> None:
        logger.error("Internal Server Error: %s", self.request.path, exc_info=failure)
        if self.headers_sent:
            # Too late for a 500: the client must not take a truncated body for a whole one.
            self._call(self._abort())
        else:
            self._call(self._error_response(failure))

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` on the server loop and wait for it (its writes flushed: flow control)."""
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except RuntimeError as error:  # the loop is closed
            coroutine.close()
            raise _ClientGoneError() from error
        while True:
            try:
                future.result(_LOOP_CHECK_INTERVAL)
                return
            except concurrent.futures.TimeoutError:
                if future.done():
                    raise  # the coroutine's own TimeoutError, not the wait's
                if not self.loop.is_running():
                    future.cancel()
                    raise _ClientGoneError() from None
            except (tornado.iostream.StreamClosedError, concurrent.futures.CancelledError) as error:
                raise _ClientGoneError() from error

    def connection_closed(self) -> bool:
        """Whether the client's stream is closed already."""
        stream = getattr(self.connection, "stream", None)
        return stream is not None and bool(stream.closed())

    # Server loop -----------------------------------------------------------------------------

    async def _start(self, chunk: bytes, *, whole: bool) -> None:
        if self.status is None:
            raise RuntimeError("The WSGI application did not call start_response.")
        code_text, _, reason = self.status.partition(" ")
        code = int(code_text)
        headers = tornado.httputil.HTTPHeaders()
        for name, value in self.headers:
            headers.add(name, value)
        if whole and code not in (204, 304) and "Content-Length" not in headers:
            headers["Content-Length"] = str(len(chunk))
        start_line = tornado.httputil.ResponseStartLine("HTTP/1.1", code, reason)
        future = self.connection.write_headers(start_line, headers, None if self.head else chunk)
        self.headers_sent = True
        await future
        self._log(code)

    async def _write(self, chunk: bytes) -> None:
        if not self.head and chunk:
            await self.connection.write(chunk)

    async def _finish(self) -> None:
        self.connection.finish()
        if (
            self.request.version == "HTTP/1.0"
            and "Content-Length" not in {name.title() for name, _ in self.headers}
            and not self.head
        ):
            # An HTTP/1.0 client that asked for keep-alive has no other way to find the body's end.
            self.connection.close()  # type: ignore[attr-defined]

    async def _abort(self) -> None:
        self.connection.close()  # type: ignore[attr-defined]

    async def _error_response(self, failure: ExcInfo) -> None:
        self.status, self.headers, self.written = "500 Internal Server Error", [], []
        if self.debug():
            body = "".join(traceback.format_exception(*failure)).encode("utf-8", "replace")
        else:
            body = SERVER_ERROR_BODY
        self.headers = [("Content-Type", "text/plain; charset=utf-8")]
        await self._start(body, whole=True)
        self.connection.finish()

    def error_response_on_loop(self, failure: ExcInfo) -> None:
        """Answer 500 from the loop itself (when no worker thread could run)."""
        if self.headers_sent or self.connection_closed():
            self.connection.close()  # type: ignore[attr-defined]
            return
        task = asyncio.ensure_future(self._error_response(failure))
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    def _log(self, code: int) -> None:
        log = access_log.info if code < 400 else access_log.warning if code < 500 else access_log.error
        request = self.request
        log(
            "%d %s %s (%s) %.2fms",
            code,
            request.method,
            request.uri,
            request.remote_ip,
            1000 * request.request_time(),
        )
