"""The Python client's sans-I/O parts, by tables: positions and ``?recover=``, options, the wire encodings."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import msgspec
import pytest

from tornado_websockets.client import ClientUsageError, Liveness, Reconnect
from tornado_websockets.client.connection import normalize_data
from tornado_websockets.client.options import is_final_close, is_reconnect_now, whole_number
from tornado_websockets.client.positions import Gap, Position, Positions, encode_component
from tornado_websockets.client.wire import decode_frame, encode_frame, has_bytes
from tornado_websockets.exceptions import ProtocolError
from tornado_websockets.protocol import ServerFrame


def position(stream: str, seq: int, epoch: str = "e1", token: str | None = "t") -> ServerFrame:
    data: dict[str, Any] = {"stream": stream, "seq": seq, "epoch": epoch}
    if token is not None:
        data["token"] = token
    return ServerFrame("stream", data)


def numbered(stream: str, seq: int) -> ServerFrame:
    return ServerFrame("said", {}, stream=stream, seq=seq)


def test_positions_follow_frames_and_a_jump_is_a_gap() -> None:
    positions = Positions()
    assert positions.track(position("lobby", 4, token="t4")) is None
    assert positions.track(numbered("lobby", 5)) is None
    assert positions.track(numbered("lobby", 5)) is None  # a duplicate moves nothing
    assert positions.track(numbered("lobby", 8)) == Gap("lobby", 6, 8)
    assert positions.streams == {"lobby": Position(5, "t4")}  # the position before the gap
    positions.accept(Gap("lobby", 6, 8))
    assert positions.streams == {"lobby": Position(8, "t4")}


def test_a_skipped_frame_keeps_the_token_and_leaving_forgets_the_stream() -> None:
    positions = Positions()
    positions.track(position("lobby", 1, token="t1"))
    positions.track(ServerFrame("stream", {"stream": "lobby", "seq": 2}))  # the sender's own frame
    assert positions.streams == {"lobby": Position(2, "t1")}
    positions.track(ServerFrame("stream", {"stream": "lobby", "left": True}))
    assert positions.streams == {}


def test_another_epoch_starts_over() -> None:
    positions = Positions()
    positions.track(position("a", 1))
    positions.track(position("b", 7, epoch="e2"))
    assert (positions.epoch, positions.streams) == ("e2", {"b": Position(7, "t")})


def test_frames_without_a_number_or_before_any_position_are_no_gap() -> None:
    positions = Positions()
    assert positions.track(ServerFrame("said", {})) is None
    assert positions.track(numbered("lobby", 9)) is None
    assert positions.streams == {"lobby": Position(9, None)}
    assert positions.recover_parameter() is None  # no epoch: nothing the server could replay


@pytest.mark.parametrize(
    "value", ["*", "room é/ü", "a b&c=d", "__proto__", "~!*'()-_.", {"nested": ["x", 1]}]
)
def test_recover_is_encoded_as_encode_uri_component_of_json_stringify(value: Any) -> None:
    encoded = encode_component(value)
    assert json.loads(urllib.parse.unquote(encoded)) == value
    assert all(char.isalnum() or char in "%-_.!~*'()" for char in encoded)


def test_the_recover_request_is_bounded_newest_first() -> None:
    positions = Positions()
    for n in range(200):
        positions.track(position(f"room-{n:03d}", n, token=f"token-{n:03d}"))
    raw = positions.recover_parameter(limit=1000)
    assert raw is not None
    assert len(raw) <= 1000
    request = json.loads(urllib.parse.unquote(raw))
    kept = list(request["streams"])
    assert kept == [f"room-{n:03d}" for n in range(199, 199 - len(kept), -1)]
    assert request["tokens"] == {stream: f"token-{stream[5:]}" for stream in kept}
    assert positions.unrecovered == {f"room-{n:03d}" for n in range(200 - len(kept))}
    assert positions.resyncs(position("room-000", 3)) == "room-000"
    assert positions.resyncs(position("room-000", 4)) is None  # once


def test_reconnect_delays_grow_to_the_ceiling_minus_the_jitter() -> None:
    reconnect = Reconnect(initial=0.5, max=4, factor=2, jitter=0.5)
    assert [reconnect.delay(n, rand=0) for n in range(5)] == [0.5, 1, 2, 4, 4]
    assert reconnect.delay(3, rand=1) == 2


@pytest.mark.parametrize(
    "make",
    [
        lambda: Reconnect(initial=2, max=1),
        lambda: Reconnect(factor=0.5),
        lambda: Reconnect(jitter=2),
        lambda: Liveness(idle=0),
        lambda: whole_number("outbox", -1, 0),
        lambda: whole_number("refused_after", True, 1),
    ],
)
def test_bad_options_are_a_usage_error_naming_the_fix(make: Any) -> None:
    with pytest.raises(ClientUsageError, match=r"should|needs"):
        make()


@pytest.mark.parametrize(
    ("code", "final", "now"),
    [
        (4000, True, False),
        (4099, True, False),
        (1008, True, False),
        (4100, False, True),
        (1012, False, True),
        (1000, False, False),
        (1006, False, False),
        (1011, False, False),
    ],
)
def test_close_codes(code: int, final: bool, now: bool) -> None:
    assert (is_final_close(code), is_reconnect_now(code)) == (final, now)


@pytest.mark.parametrize(
    ("data", "sent"),
    [
        (None, {}),
        ("hi", {"message": "hi"}),
        (3, {"message": 3}),
        ([1], {"message": [1]}),
        ({"a": 1}, {"a": 1}),
    ],
)
def test_the_emit_rule_of_the_javascript_client(data: Any, sent: Any) -> None:
    assert normalize_data(data) == sent


def test_frames_with_bytes_are_messagepack_when_negotiated_else_base64_json() -> None:
    frame = {"event": "thumb", "data": {"png": b"\x89PN"}}
    assert encode_frame(frame, msgpack=True) == bytes.fromhex(
        "82a56576656e74a57468756d62a46461746181a3706e67c40389504e"  # docs/protocol.rst's example
    )
    assert encode_frame(frame, msgpack=False) == '{"event":"thumb","data":{"png":"iVBO"}}'
    assert encode_frame({"event": "x", "data": {"n": 1}}, msgpack=True) == '{"event":"x","data":{"n":1}}'
    assert has_bytes({"a": [{"b": bytearray(b"1")}]})
    assert not has_bytes({"a": ["1"]})


def test_binary_messages_decode_as_messagepack_only_when_negotiated() -> None:
    message = msgspec.msgpack.encode({"event": "x", "data": {"b": b"\x00"}, "stream": "*", "seq": 3})
    assert decode_frame(message, msgpack=True) == ServerFrame("x", {"b": b"\x00"}, stream="*", seq=3)
    with pytest.raises(ValueError, match=r"(?i)utf-8|json|expecting"):
        decode_frame(message, msgpack=False)  # read as JSON (UTF-8 bytes), as the server does
    with pytest.raises(ProtocolError):
        decode_frame(b"\xc1", msgpack=True)
    with pytest.raises(ProtocolError):
        decode_frame(msgspec.msgpack.encode([1]), msgpack=True)
