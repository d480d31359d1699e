"""The frame codec, by tables of inputs and outputs: no server, no socket."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tornado_websockets import binaryframes, protocol
from tornado_websockets.exceptions import ProtocolError
from tornado_websockets.protocol import Frame


@pytest.mark.parametrize(
    ("message", "frame"),
    [
        ('{"event": "chat", "data": {"text": "hi"}}', Frame("chat", {"text": "hi"})),
        ('{"event": "chat"}', Frame("chat", {})),
        ('{"event": "chat", "data": null}', Frame("chat", {})),
        ('{"event": "chat.message", "data": {}}', Frame("chat.message", {})),
        (b'{"event": "bytes", "data": {"a": 1}}', Frame("bytes", {"a": 1})),
        ('{"event": "x", "data": {"deep": [[[1]]]}, "extra": 1}', Frame("x", {"deep": [[[1]]]})),
    ],
)
def test_decode_valid(message: str | bytes, frame: Frame) -> None:
    assert protocol.decode(message) == frame


@pytest.mark.parametrize(
    ("message", "warning"),
    [
        ("not json", "Invalid JSON was sent."),
        ("", "Invalid JSON was sent."),
        ('{"event": "x"', "Invalid JSON was sent."),
        (b'{"event": "\xff\xfe"}', "Invalid JSON was sent."),
        ("[" * 100_000 + "]" * 100_000, "Invalid JSON was sent."),
        ('{"event": "x", "data": {"n": ' + "9" * 5000 + "}}", "Invalid JSON was sent."),
        ("[1, 2]", "The frame should be a JSON object."),
        ('"chat"', "The frame should be a JSON object."),
        ("null", "The frame should be a JSON object."),
        ('{"data": {}}', "There is no event in this JSON."),
        ('{"event": null}', "There is no event in this JSON."),
        ('{"event": ""}', "There is no event in this JSON."),
        ('{"event": 5}', "The event should be a string."),
        ('{"event": ["a"]}', "The event should be a string."),
        ('{"event": "x", "data": "text"}', "The data should be a dictionary."),
        ('{"event": "x", "data": [1]}', "The data should be a dictionary."),
        ('{"event": "x", "data": 0}', "The data should be a dictionary."),
    ],
)
def test_decode_invalid_raises_the_warning_text(message: str | bytes, warning: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(message)
    assert caught.value.message == warning


@pytest.mark.parametrize(
    ("data", "expected"),
    [(None, {}), ("hello", {"message": "hello"}), ({"a": 1}, {"a": 1}), ({}, {})],
)
def test_encode_emit_normalizes_data(data: Any, expected: dict[str, Any]) -> None:
    assert json.loads(protocol.encode_emit("ev", data)) == {"event": "ev", "data": expected}


@pytest.mark.parametrize("event", [None, 1, b"bytes", ["x"]])
def test_encode_emit_rejects_a_non_str_event(event: Any) -> None:
    with pytest.raises(TypeError, match="Event should be a str"):
        protocol.encode_emit(event, {})


@pytest.mark.parametrize("data", [1, 1.5, [1], ("a",), b"x", True])
def test_encode_emit_rejects_other_data(data: Any) -> None:
    with pytest.raises(TypeError, match="Data should be a dict, a str or None"):
        protocol.encode_emit("ev", data)


def test_unencodable_value_names_event_and_type() -> None:
    with pytest.raises(TypeError, match=r'"ev".*object'):
        protocol.encode_emit("ev", {"x": object()})


def test_encoding_is_compact_utf8() -> None:
    assert protocol.encode("é", {"a": [1, 2]}) == '{"event":"é","data":{"a":[1,2]}}'.encode()


def test_warning_and_error_frames() -> None:
    assert json.loads(protocol.warning_frame("Nope.", event="x")) == {
        "event": "warning",
        "data": {"message": "Nope.", "event": "x"},
    }
    error = json.loads(protocol.error_frame("boom"))
    assert error["event"] == "error"
    assert error["data"]["event"] == "boom"


WARNINGS = {
    protocol.INVALID_JSON,
    protocol.NOT_AN_OBJECT,
    protocol.NO_EVENT,
    protocol.EVENT_NOT_STRING,
    protocol.DATA_NOT_DICT,
    protocol.ID_INVALID,
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.one_of(st.text(), st.binary()))
def test_any_input_decodes_or_raises_protocol_error(message: str | bytes) -> None:
    try:
        frame = protocol.decode(message)
    except ProtocolError as error:
        message_text = error.message
        assert message_text in WARNINGS
        return
    assert isinstance(frame.event, str)
    assert isinstance(frame.data, dict)


@given(st.dictionaries(st.sampled_from(["event", "data", "id", "x"]), json_values, max_size=4))
def test_any_json_object_decodes_or_raises_protocol_error(payload: dict[str, Any]) -> None:
    try:
        frame = protocol.decode(json.dumps(payload))
    except ProtocolError:
        return
    assert frame.event == payload["event"]
    assert frame.data == (payload.get("data") or {})


@pytest.mark.parametrize(
    ("message", "frame_id"),
    [('{"event": "a", "id": 7}', 7), ('{"event": "a", "id": "req-1"}', "req-1"), ('{"event": "a"}', None)],
)
def test_decode_keeps_a_valid_id(message: str, frame_id: Any) -> None:
    assert protocol.decode(message).id == frame_id


@pytest.mark.parametrize(
    ("message", "warning", "frame_id"),
    [
        ('{"event": "a", "id": true}', protocol.ID_INVALID, None),
        ('{"event": "a", "id": 1.5}', protocol.ID_INVALID, None),
        ('{"event": "a", "id": 9007199254740992}', protocol.ID_INVALID, None),
        ('{"event": "a", "id": "' + "x" * 129 + '"}', protocol.ID_INVALID, None),
        ('{"event": "a", "id": 3, "data": []}', protocol.DATA_NOT_DICT, 3),
        ('{"event": 1, "id": "r"}', protocol.EVENT_NOT_STRING, "r"),
        ('{"id": 4}', protocol.NO_EVENT, 4),
    ],
)
def test_refused_requests_keep_their_id_for_the_reply(message: str, warning: str, frame_id: Any) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(message)
    assert (caught.value.message, caught.value.frame_id) == (warning, frame_id)


def test_ack_frames() -> None:
    assert json.loads(protocol.ack_frame(7, [1, "a"])) == {"event": "ack", "id": 7, "data": [1, "a"]}
    assert json.loads(protocol.ack_error_frame("r", "Nope.", "ev")) == {
        "event": "ack",
        "id": "r",
        "error": {"message": "Nope.", "event": "ev"},
    }
    with pytest.raises(TypeError, match="reply to request 7"):
        protocol.ack_frame(7, object())


def test_decode_server_frame() -> None:
    frame = protocol.decode_server_frame('{"event": "ack", "id": 1, "data": [1]}')
    assert (frame.event, frame.id, frame.data, frame.error) == ("ack", 1, [1], None)
    with pytest.raises(ProtocolError):
        protocol.decode_server_frame("[]")


def test_a_long_event_name_is_echoed_shortened() -> None:
    name = "x" * 900_000
    message = f'Event "{name}" is not bound on "/p".'
    warning = json.loads(protocol.warning_frame(message, event=name))
    assert len(protocol.warning_frame(message, event=name)) < 600
    short = "x" * protocol.MAX_ECHOED_NAME + "... (900000 characters)"
    assert warning["data"] == {"message": f'Event "{short}" is not bound on "/p".', "event": short}
    reply = json.loads(protocol.ack_error_frame(7, message, name))
    assert reply["error"] == {"message": f'Event "{short}" is not bound on "/p".', "event": short}
    # A name within the bound is echoed as it is.
    assert json.loads(protocol.warning_frame('Event "ok" is not bound.', event="ok"))["data"]["event"] == "ok"


# MessagePack frames (binaryframes): the binary codec fuzzed alone ----------------------------------

binary_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.binary())
def test_any_binary_message_decodes_or_raises_protocol_error(message: bytes) -> None:
    try:
        frame = protocol.decode(message, packed=True)
    except ProtocolError as error:
        message_text = error.message
        assert message_text in WARNINGS | {binaryframes.INVALID_MSGPACK}
        return
    assert isinstance(frame.event, str)
    assert isinstance(frame.data, dict)


@given(st.dictionaries(st.sampled_from(["event", "data", "id", "x"]), binary_values, max_size=4))
def test_any_messagepack_map_decodes_or_raises_protocol_error(payload: dict[str, Any]) -> None:
    try:
        frame = protocol.decode(msgspec.msgpack.encode(payload), packed=True)
    except ProtocolError as error:
        message_text = error.message
        assert message_text in WARNINGS
        return
    assert frame.event == payload["event"]
    assert frame.data == (payload.get("data") or {})


@given(st.dictionaries(st.text(), binary_values, max_size=4), st.text(min_size=1))
def test_bytes_anywhere_round_trip_and_become_base64_for_json(data: dict[str, Any], event: str) -> None:
    encoded = protocol.encode(event, data)
    if not binaryframes.is_packed(encoded):  # no bytes in it: JSON, as ever
        assert json.loads(encoded) == {"event": event, "data": data}
        return
    assert protocol.decode(encoded, packed=True) == Frame(event, data)
    assert json.loads(binaryframes.as_text(encoded)) == {
        "event": event,
        "data": binaryframes.text_value(data),
    }
