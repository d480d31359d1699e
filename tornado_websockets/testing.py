"""Test your event functions against a real server on a loopback port, with a real client.

::

    from tornado_websockets.testing import serve

    async def test_echo():  # with pytest-asyncio, or inside asyncio.run()
        async with serve() as server:
            async with server.connect("/echo") as client:
                await client.emit("echo", {"text": "hi"})
                assert await client.wait_for("echo") == {"text": "hi"}

`serve` starts `TornadoWrapper`'s application (every registered `WebSocket`) on ``127.0.0.1`` and
a free port, and shuts it down afterwards, closing its connections. With Django,
``server.connect(path, user=user)`` opens the socket as a signed-in user (see `session_cookie`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from typing import Any

import tornado.httpclient
import tornado.websocket

from tornado_websockets import binaryframes, codec, protocol
from tornado_websockets.exceptions import EventError
from tornado_websockets.protocol import ServerFrame
from tornado_websockets.server import Server
from tornado_websockets.tornadowrapper import TornadoWrapper

__all__ = ["DEFAULT_TIMEOUT", "ServerFrame", "TestServer", "WebSocketTestClient", "serve", "session_cookie"]

#: Seconds a client waits for a connection or a frame before giving up.
DEFAULT_TIMEOUT = 5.0


class WebSocketTestClient:
    """A client connection that sends events and waits for them, with timeouts.

    Frames are buffered in arrival order: `receive` takes the next one, `wait_for` the next one
    of a given event, leaving the others in the buffer.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, connection: tornado.websocket.WebSocketClientConnection) -> None:
        self.connection = connection
        self._buffer: list[ServerFrame] = []
        self._last_id = 0
        # Tornado's client stops reading the socket while one message waits to be read, which
        # would also leave the server's close frame unread; pump everything into a queue instead.
        self._incoming: asyncio.Queue[ServerFrame | None] = asyncio.Queue()
        self._pump_task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        while (message := await self.connection.read_message()) is not None:
            self._incoming.put_nowait(protocol.decode_server_frame(message))
        self._incoming.put_nowait(None)

    @classmethod
    async def connect(
        cls, url: str, headers: dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> WebSocketTestClient:
        """Open a connection to ``url`` (``ws://...``), sending ``headers`` with the upgrade."""
        request = tornado.httpclient.HTTPRequest(url, headers=headers, connect_timeout=timeout)
        connection = await asyncio.wait_for(tornado.websocket.websocket_connect(request), timeout)
        return cls(connection)

    async def __aenter__(self) -> WebSocketTestClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def emit(self, event: str, data: dict[str, Any] | str | None = None) -> None:
        """Send an event as the JavaScript client does (without MessagePack: bytes as base64)."""
        frame = protocol.encode_emit(event, data)
        if binaryframes.is_packed(frame):  # bytes in the data, for a server that reads base64
            frame = binaryframes.as_text(frame)
        await self.send(frame.decode())

    async def send(self, message: str | bytes) -> None:
        """Send a raw text (``str``) or binary (``bytes``) frame, valid or not."""
        await self.connection.write_message(message, binary=isinstance(message, bytes))

    async def request(
        self, event: str, data: dict[str, Any] | str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Any:
        """Send an event with an ``id`` and return the event function's reply.

        :raise EventError: the server answered with an error (its message is the error's).
        """
        self._last_id += 1
        frame_id = self._last_id
        data = binaryframes.text_value(protocol.normalize_data(data))  # bytes as base64, as emit sends them
        payload = {"event": event, "data": data, "id": frame_id}
        await self.send(codec.dumps(payload).decode())
        reply = await self._wait(lambda f: f.event == protocol.ACK_EVENT and f.id == frame_id, timeout)
        if reply.error is not None:
            raise EventError(str(reply.error.get("message")))
        return reply.data

    async def _read(self, timeout: float) -> ServerFrame:
        frame = await asyncio.wait_for(self._incoming.get(), timeout)
        if frame is None:
            self._incoming.put_nowait(None)  # every later read sees the end too
            raise ConnectionError(f"The server closed the connection (code {self.close_code}).")
        return frame

    def buffered(self) -> list[ServerFrame]:
        """The frames received so far and not yet taken by `receive` or `wait_for`, oldest first.

        It does not wait: to assert that nothing else arrived, first wait for a later frame (a
        reply), then check what is buffered.
        """
        while not self._incoming.empty():
            frame = self._incoming.get_nowait()
            if frame is None:
                self._incoming.put_nowait(None)  # the end stays visible to later reads
                break
            self._buffer.append(frame)
        return list(self._buffer)

    async def receive(self, timeout: float = DEFAULT_TIMEOUT) -> ServerFrame:
        """The next frame from the server, whatever its event."""
        if self._buffer:
            return self._buffer.pop(0)
        return await self._read(timeout)

    async def wait_for(self, event: str, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The data of the next frame whose event is ``event``; other frames stay buffered."""
        return (await self._wait(lambda frame: frame.event == event, timeout, f'"{event}" event')).data

    async def _wait(
        self, wanted: Callable[[ServerFrame], bool], timeout: float, what: str = "reply"
    ) -> ServerFrame:
        for index, frame in enumerate(self._buffer):
            if wanted(frame):
                return self._buffer.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            try:
                frame = await self._read(remaining)
            except TimeoutError:
                break
            if wanted(frame):
                return frame
            self._buffer.append(frame)
        raise TimeoutError(f"No {what} within {timeout}s; buffered: {self._buffer!r}")

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Wait until the server closes the connection; returns the close code."""
        try:
            await asyncio.wait_for(asyncio.shield(self._pump_task), timeout)
        except TimeoutError:
            raise TimeoutError(f"The connection was still open after {timeout}s.") from None
        return self.close_code

    @property
    def close_code(self) -> int | None:
        """The code the server closed with, once closed."""
        return self.connection.close_code

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection."""
        self.connection.close(code, reason)


async def session_cookie(user: Any) -> str:
    """A ``Cookie`` header value that signs a socket in as ``user``, for Django sites.

    ``user`` is a user (a session is made for it, as ``Client.force_login`` does) or a Django test
    ``Client`` that logged in (``force_login`` or ``login``), whose session is used. The session
    must be committed for the server's threads to read it: use ``django_db(transaction=True)``,
    ``TransactionTestCase`` or ``LiveServerTestCase``.
    """
    from asgiref.sync import sync_to_async
    from django.conf import settings
    from django.test import Client

    if isinstance(user, Client):
        client = user
    else:
        client = Client()
        await sync_to_async(client.force_login)(user)  # the ORM, out of the event loop
    morsel = client.cookies.get(settings.SESSION_COOKIE_NAME)
    if morsel is None or not morsel.value:
        raise ValueError("The Django test Client has no session: call client.force_login(user) first.")
    return f"{settings.SESSION_COOKIE_NAME}={morsel.value}"


class _Connecting:
    """``await server.connect(path)`` or ``async with server.connect(path) as client``."""

    def __init__(self, url: str, headers: dict[str, str] | None, timeout: float, user: Any = None) -> None:
        self._args = (url, headers, timeout)
        self._user = user
        self._client: WebSocketTestClient | None = None

    async def _connect(self) -> WebSocketTestClient:
        url, headers, timeout = self._args
        if self._user is not None:
            cookie = await session_cookie(self._user)
            headers = {**(headers or {}), "Cookie": cookie}
        return await WebSocketTestClient.connect(url, headers, timeout)

    def __await__(self) -> Generator[Any, None, WebSocketTestClient]:
        return self._connect().__await__()

    async def __aenter__(self) -> WebSocketTestClient:
        self._client = await self._connect()
        return self._client

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            self._client.close()


class TestServer:
    """A running server: its port, the URLs of its paths, and `connect`."""

    __test__ = False  # not a pytest test class

    def __init__(self, port: int, address: str) -> None:
        self.port = port
        self.address = address

    def url(self, path: str) -> str:
        """The ``ws://`` URL of a `WebSocket` path (without the ``/ws`` prefix)."""
        return f"ws://{self.address}:{self.port}/ws{path if path.startswith('/') else '/' + path}"

    def http_url(self, path: str = "/") -> str:
        """The ``http://`` URL of any path of the application."""
        return f"http://{self.address}:{self.port}{path}"

    def connect(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        user: Any = None,
    ) -> _Connecting:
        """Connect a `WebSocketTestClient` to a `WebSocket` path.

        ``user`` (Django, with ``serve(django=True)``): a user, or a test ``Client`` after
        ``force_login``, to connect as; see `session_cookie`.
        """
        return _Connecting(self.url(path), headers, timeout, user)


@contextlib.asynccontextmanager
async def serve(
    tornado_handlers: Sequence[Any] | None = None,
    tornado_settings: dict[str, Any] | None = None,
    address: str = "127.0.0.1",
    port: int = 0,
    django: bool = False,
    server: Server | None = None,
) -> AsyncIterator[TestServer]:
    """Start the registered WebSockets (plus ``tornado_handlers``) on a loopback port, then stop them.

    With ``django=True`` the server is what ``runtornado`` serves: Django's views as well, the
    origin policy, and ``socket.user`` / ``socket.session`` from the session cookie. ``server``
    serves another `~tornado_websockets.server.Server` than `TornadoWrapper`'s default one (its
    own paths, backplane and limits).
    """
    runtime = server if server is not None else TornadoWrapper.runtime
    handlers = list(tornado_handlers or [])
    settings = dict(tornado_settings or {})
    if django:
        from tornado_websockets import djangoapp

        handlers.extend(djangoapp.handlers())
        settings = {**djangoapp.application_settings(), **settings}
    runtime.start_app(handlers, settings)
    runtime.listen(port, address)
    assert runtime.tornado_port is not None
    try:
        yield TestServer(runtime.tornado_port, address)
    finally:
        await runtime.shutdown(grace=1.0)
