"""A blocking wrapper over `Client` for scripts: its event loop runs in a thread of its own.

Listeners run in that thread. Every method waits for the asynchronous one to finish and returns its result
or raises its exception.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from tornado_websockets.client.connection import Client

__all__ = ["SyncClient", "connect_sync"]

T = TypeVar("T")


class SyncClient:
    """`Client` for code without an event loop: ``with connect_sync(url) as client: client.emit(...)``."""

    def __init__(self, url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"client {url}", daemon=True)
        self._thread.start()
        self.client: Client = self._call(self._make(url, options))

    def __repr__(self) -> str:
        return f"<SyncClient {self.client.url} {self.client.state}>"

    @staticmethod
    async def _make(url: str, options: dict[str, Any]) -> Client:
        return Client(url, **options)

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if not self._thread.is_alive():
            coroutine.close()
            raise RuntimeError("This SyncClient is closed: make a new one with connect_sync(url).")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def open(self) -> SyncClient:
        """Connect and wait for the socket to open (raises as `Client.wait_open` does)."""
        self._call(self.client.__aenter__())
        return self

    def on(self, event: str, callback: Callable[..., Any]) -> SyncClient:
        """Like `Client.on`; the listener runs in the client's thread."""
        self._call(self._in_loop(self.client.on, event, callback))
        return self

    def once(self, event: str, callback: Callable[..., Any]) -> SyncClient:
        """Like `Client.once`."""
        self._call(self._in_loop(self.client.once, event, callback))
        return self

    def off(self, event: str | None = None, callback: Callable[..., Any] | None = None) -> SyncClient:
        """Like `Client.off`."""
        self._call(self._in_loop(self.client.off, event, callback))
        return self

    @staticmethod
    async def _in_loop(method: Callable[..., Any], *args: Any) -> None:
        """Run ``method`` in the client's thread, so that a bad argument raises here, in the caller's."""
        method(*args)

    def emit(self, event: str, data: Any = None) -> None:
        """Like `Client.emit`."""
        self._call(self.client.emit(event, data))

    def request(self, event: str, data: Any = None, timeout: float | None = None) -> Any:
        """Like `Client.request`: the reply, or its exception."""
        return self._call(self.client.request(event, data, timeout))

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """``for event, data in client``: the server's events from now on, until the client closes."""
        iterator = self._call(self._aiter())  # now, not at the first next(): events from here on are kept
        return self._next_events(iterator)

    def _next_events(self, iterator: Any) -> Iterator[tuple[str, Any]]:
        while True:
            try:
                yield self._call(anext(iterator))
            except StopAsyncIteration:
                return

    async def _aiter(self) -> Any:
        return aiter(self.client)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection for good and stop the client's thread."""
        if self._thread.is_alive():
            self._call(self.client.close(code, reason))
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def connect_sync(url: str, **options: Any) -> SyncClient:
    """A blocking client, opened: ``with connect_sync(url) as client:``. Options as for `Client`."""
    client = SyncClient(url, **options)
    try:
        return client.open()
    except BaseException:
        client.close()
        raise
