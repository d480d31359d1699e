from __future__ import annotations

import pytest

from tornado_websockets.exceptions import (
    EmitHandlerError,
    InvalidInstanceError,
    NotCallableError,
    ProtocolError,
    TornadoWebSocketsError,
    WebSocketEventAlreadyBinded,
)


@pytest.mark.parametrize(
    ("error", "attributes", "words"),
    [
        (
            EmitHandlerError("news", "/feed"),
            {"event": "news", "path": "/feed"},
            ['"news"', '"/feed"', "start"],
        ),
        (
            InvalidInstanceError(42, "tornado_websockets.websocket.WebSocket"),
            {"actual_instance": 42, "expected_instance_name": "tornado_websockets.websocket.WebSocket"},
            ["tornado_websockets.websocket.WebSocket", "int", "42"],
        ),
        (NotCallableError("nope"), {"thing": "nope"}, ["'nope'", "not callable", "@ws.on"]),
        (
            WebSocketEventAlreadyBinded("chat", "/room"),
            {"event": "chat", "path": "/room"},
            ['"chat"', '"/room"', "name="],
        ),
        (ProtocolError("Invalid JSON was sent."), {"message": "Invalid JSON was sent."}, ["Invalid JSON"]),
    ],
)
def test_exception_keeps_arguments_and_explains(
    error: TornadoWebSocketsError, attributes: dict[str, object], words: list[str]
) -> None:
    assert isinstance(error, TornadoWebSocketsError)
    for name, value in attributes.items():
        assert getattr(error, name) == value
    for word in words:
        assert word in str(error)


def test_protocol_error_is_also_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)
