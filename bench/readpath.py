"""The frame reader alone: CPU per message of ours and of Tornado's, in one process, no load client.

The echo scenarios measure everything a round trip costs, and on a shared machine their figures
swing by a third between runs. This isolates the part the reader changes: a socket pair, one
side written by hand with masked client frames, the other read by a ``WebSocketProtocol13`` (ours
or Tornado's) whose handler only counts. Two patterns:

- ``one``: a frame, then wait until it is handed over (a closed-loop client: one frame per read);
- ``burst``: 100 frames in one write (a client that sends faster than the server reads).

``python -m bench readpath`` prints µs of process CPU per message, best of a few rounds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import tornado.iostream
import tornado.websocket

from tornado_websockets.framereader import BulkFrameProtocol
from tornado_websockets.frames import python_mask

__all__ = ["main", "measure"]

MESSAGE = b'{"event":"echo","data":{"n":1,"text":"hello, world"}}'


def _frame(payload: bytes) -> bytes:
    key = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + key + python_mask(key, payload)


class _Counter:
    """The handler side: counts messages and wakes the writer when the expected count is reached."""

    def __init__(self) -> None:
        self.count = 0
        self.expected = 0
        self.reached: asyncio.Future[None] | None = None

    def on_message(self, message: str | bytes) -> None:
        self.count += 1
        if self.count >= self.expected and self.reached is not None and not self.reached.done():
            self.reached.set_result(None)

    def on_ping(self, data: bytes) -> None:
        pass

    def on_pong(self, data: bytes) -> None:
        pass

    def on_ws_connection_close(self, close_code: int | None = None, close_reason: str | None = None) -> None:
        pass

    def log_exception(self, *args: Any) -> None:
        pass


async def _run(
    protocol_class: type[tornado.websocket.WebSocketProtocol13], burst: int, messages: int
) -> float:
    reader_socket, writer_socket = socket.socketpair()
    counter = _Counter()
    params = tornado.websocket._WebSocketParams(max_message_size=1024 * 1024)
    protocol = protocol_class(counter, False, params)
    protocol.stream = tornado.iostream.IOStream(reader_socket)
    task = asyncio.ensure_future(protocol._receive_frame_loop())
    data = _frame(MESSAGE) * burst
    loop = asyncio.get_running_loop()
    started = time.process_time()
    for _ in range(messages // burst):
        counter.expected += burst
        counter.reached = loop.create_future()
        writer_socket.sendall(data)
        await counter.reached
    elapsed = time.process_time() - started
    writer_socket.close()
    await asyncio.wait_for(task, 5)
    protocol.stream.close()
    return elapsed / messages * 1e6


def measure(burst: int, messages: int = 20_000, rounds: int = 5) -> dict[str, float]:
    """µs of CPU per message (best of ``rounds``) for each reader, writing ``burst`` frames at once."""
    readers = {"ours": BulkFrameProtocol, "tornado": tornado.websocket.WebSocketProtocol13}
    best = dict.fromkeys(readers, float("inf"))
    for _ in range(rounds):
        for name, protocol_class in readers.items():
            best[name] = min(best[name], asyncio.run(_run(protocol_class, burst, messages)))
    return best


def main() -> None:
    """Print both patterns."""
    for name, burst in (("one", 1), ("burst", 100)):
        result = measure(burst)
        ratio = result["tornado"] / result["ours"]
        ours, tornados = result["ours"], result["tornado"]
        print(f"{name:5} ours {ours:.2f} µs/message, Tornado's {tornados:.2f}: {ratio:.2f}x less CPU")  # noqa: T201


if __name__ == "__main__":
    main()
