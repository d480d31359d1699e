"""Route variables: parsing as pure data, then matching real connections."""

from __future__ import annotations

import re
from typing import Any

import pytest
import tornado.httpclient

from tornado_websockets.routes import Route
from tornado_websockets.testing import serve
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler


@pytest.mark.parametrize(
    ("path", "url", "params"),
    [
        ("/chat/<room>", "/chat/lobby", {"room": "lobby"}),
        ("/items/<int:id>", "/items/-42", {"id": -42}),
        ("/a/<slug:s>/b/<int:n>", "/a/x-y_z/b/7", {"s": "x-y_z", "n": 7}),
        ("/files/<path:rest>", "/files/a/b.txt", {"rest": "a/b.txt"}),
    ],
)
def test_parse_and_convert(path: str, url: str, params: dict[str, Any]) -> None:
    route = Route.parse(path)
    match = re.fullmatch(route.pattern, url)
    assert match is not None
    assert route.convert(match.groupdict()) == params


@pytest.mark.parametrize(("path", "url"), [("/items/<int:id>", "/items/abc"), ("/chat/<room>", "/chat/a/b")])
def test_values_that_do_not_match(path: str, url: str) -> None:
    assert re.fullmatch(Route.parse(path).pattern, url) is None


def test_paths_without_variables_are_kept_verbatim() -> None:
    route = Route.parse("/plain.path")
    assert (route.pattern, route.has_variables) == ("/plain.path", False)


@pytest.mark.parametrize(
    ("path", "message"), [("/x/<float:f>", "Unknown converter 'float'"), ("/<a>/<a>", "appears twice")]
)
def test_bad_paths(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Route.parse(path)


async def test_route_variables_reach_event_functions() -> None:
    ws = WebSocket("/rooms/<room>/<int:seat>")
    assert ws.path == "/rooms/<room>/<int:seat>"

    @ws.on
    async def where(socket: WebSocketHandler) -> dict[str, Any]:
        return socket.path_params

    async with serve() as server:
        async with server.connect("/rooms/lobby/3") as client:
            assert await client.request("where") == {"room": "lobby", "seat": 3}
        with pytest.raises(tornado.httpclient.HTTPClientError) as caught:
            await server.connect("/rooms/lobby/not-a-number")
        assert caught.value.code == 404
