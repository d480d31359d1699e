"""A warning echoes a bounded part of the client's event name, over a real server and client."""

from __future__ import annotations

import json

import tornado.websocket

from tornado_websockets import protocol
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket


async def test_a_900_kb_event_name_earns_a_short_warning() -> None:
    WebSocket("/strict")
    name = "n" * 900_000
    async with serve() as server:
        connection = await tornado.websocket.websocket_connect(server.url("/strict"))
        await connection.write_message(f'{{"event": "{name}", "data": {{}}, "id": 1}}')
        answers = [await connection.read_message(), await connection.read_message()]
        connection.close()
    for answer in answers:
        assert isinstance(answer, str)
        print(f"\nanswer to a 900 KB event name: {len(answer)} bytes")  # noqa: T201 - the figure asked for
        assert len(answer) < 1_000
    warning = next(json.loads(a) for a in answers if json.loads(a)["event"] == protocol.WARNING_EVENT)
    assert warning["data"]["event"] == "n" * protocol.MAX_ECHOED_NAME + "... (900000 characters)"
