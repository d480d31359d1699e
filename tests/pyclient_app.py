"""The server of the Python client's behaviour suite, run as ``python -m tests.pyclient_app PORT``.

The same paths as the JavaScript client's resilience tests (tests/test_client_js_resilience.py): an echo
(with requests), a path closing every connection with the code in its URL, a guarded path, 1,500 rooms with
recovery, and crafted servers sending scripted frames (a gap, 1,500 room positions, a "pong"). ``/control``
lets the test process switch the guard and read the URLs the crafted servers saw.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec
import tornado.web
import tornado.websocket

from tests.crafted_servers import Crafted, GapServer, RoomsServer
from tornado_websockets.exceptions import EventError
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

#: What the registered paths saw, and whether the guard refuses.
seen: dict[str, Any] = {"opens": 0, "guard_calls": 0, "refuse": True}


class PongServer(Crafted):
    """Answers the client's liveness probe with "pong", as a server that reserves "ping" does."""

    urls: ClassVar[list[str]] = []
    pings: ClassVar[int] = 0

    def script(self, recover: dict[str, Any] | None) -> None:
        self.send("hello", {})

    def on_message(self, message: str | bytes) -> None:
        if json.loads(message).get("event") == "ping":
            type(self).pings += 1
            self.send("pong", {})


#: docs/protocol.rst's example: ``socket.emit("thumb", {"png": b"\x89PN"})`` as a MessagePack frame.
THUMB = bytes.fromhex("82a56576656e74a57468756d62a46461746181a3706e67c40389504e")


class MessagePackServer(Crafted):
    """Speaks docs/protocol.rst: accepts ``tornado-websockets.msgpack``, sends the page's example, and
    answers each request with the kind of message it came in and its data (bytes as MessagePack)."""

    urls: ClassVar[list[str]] = []

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return "tornado-websockets.msgpack" if "tornado-websockets.msgpack" in subprotocols else None

    def script(self, recover: dict[str, Any] | None) -> None:
        if self.selected_subprotocol:
            self.write_message(THUMB, binary=True)
        else:
            self.send("thumb", {"png": "iVBO"})  # bytes as base64, for a client without MessagePack

    def on_message(self, message: str | bytes) -> None:
        binary = isinstance(message, bytes)
        frame = msgspec.msgpack.decode(message) if binary else json.loads(message)
        reply = {"event": "ack", "id": frame["id"], "data": {"binary": binary, "data": frame["data"]}}
        if binary:
            self.write_message(msgspec.msgpack.encode(reply), binary=True)
        else:
            self.write_message(json.dumps(reply))


class ReservedServer(Crafted):
    """Frames named after the client's own events ("ended", "gap"), the server's "error", then "hello"."""

    urls: ClassVar[list[str]] = []

    def script(self, recover: dict[str, Any] | None) -> None:
        self.send("ended", {"code": 4001, "reason": "fake", "final": True})
        self.send("gap", {"stream": "*", "expected": 1, "received": 9})
        self.send("error", {"message": "It failed.", "event": "buy"})
        self.send("hello", {})


CRAFTED: dict[str, type[Crafted]] = {
    "reserved": ReservedServer,
    "gap": GapServer,
    "rooms": RoomsServer,
    "pong": PongServer,
    "msgpack": MessagePackServer,
}


class Control(tornado.web.RequestHandler):
    """GET: what the server saw (``?reset=1`` forgets it); POST ``refuse=0|1``: switch the guard."""

    def get(self) -> None:
        if self.get_query_argument("reset", None):
            seen.update(opens=0, guard_calls=0, refuse=True)
            for crafted in CRAFTED.values():
                crafted.urls.clear()
            PongServer.pings = 0
        urls = {name: crafted.urls for name, crafted in CRAFTED.items()}
        self.write({**seen, "urls": urls, "pings": PongServer.pings})

    def post(self) -> None:
        seen["refuse"] = self.get_body_argument("refuse") == "1"


@dataclass
class Said:
    """A typed payload, for the client's typed listeners."""

    text: str
    n: int


def register() -> None:
    """The registered paths (see the module's docstring)."""
    echo = WebSocket("/echo")

    @echo.on(name="echo")
    async def echo_back(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("echo", data)

    @echo.on
    async def add(data: dict[str, Any]) -> int:
        return int(data["a"]) + int(data["b"])

    @echo.on
    async def fail(data: dict[str, Any]) -> None:
        raise EventError("No such thing.")

    @echo.on
    async def slow(data: dict[str, Any]) -> str:
        import asyncio

        await asyncio.sleep(float(data["seconds"]))
        return "late"

    @echo.on
    async def headers(socket: WebSocketHandler) -> dict[str, Any]:
        request = socket.request
        return {"cookie": request.headers.get("Cookie"), "token": request.headers.get("X-Token")}

    @echo.on
    async def say(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("said", data)

    closing = WebSocket("/closing/<int:code>")

    @closing.on
    async def open(socket: WebSocketHandler) -> None:
        seen["opens"] += 1
        socket.close(socket.path_params["code"], "Signed out")

    guarded = WebSocket("/guarded")

    @guarded.guard
    def refuse(socket: WebSocketHandler) -> bool:
        seen["guard_calls"] += 1
        return not seen["refuse"]

    @guarded.on(name="echo")
    async def guarded_echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("echo", data)

    many = WebSocket("/many", recover=60)

    @many.on(name="join")
    async def join_many(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        for n in range(int(data["rooms"])):
            socket.join(f"room-{n:04d}")
        socket.emit("joined_all", {})

    @many.on(name="say")
    async def say_many(data: dict[str, Any]) -> None:
        many.to(str(data["room"])).emit("said", data)


def main(argv: list[str]) -> None:
    """Serve on the port given, on 127.0.0.1."""
    logging.basicConfig(level=logging.WARNING, format="%(process)d %(name)s %(levelname)s %(message)s")
    register()
    handlers = [
        (r"/control", Control),
        *((rf"/ws/crafted/{name}", crafted) for name, crafted in CRAFTED.items()),
    ]
    TornadoWrapper.run(int(argv[0]), tornado_handlers=handlers, address="127.0.0.1")


if __name__ == "__main__":
    main(sys.argv[1:])
