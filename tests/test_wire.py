"""Server frames alone: a table, a differential test against ``websockets``, and the broadcast cache.

The reference is ``websockets``' own serialization of an unmasked (server) frame,
``Frame(opcode, data, fin, rsv1).serialize(mask=False)``; and what we build must read back
through that library's parser as the same frame.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from tornado_websockets import wire


@pytest.mark.parametrize(
    ("opcode", "payload", "expected"),
    [
        (wire.TEXT, b"Spam", b"\x81\x04Spam"),
        (wire.BINARY, b"", b"\x82\x00"),
        (wire.TEXT, b"x" * 125, b"\x81\x7d" + b"x" * 125),
        (wire.TEXT, b"x" * 126, b"\x81\x7e\x00\x7e" + b"x" * 126),
        (wire.BINARY, b"x" * 65535, b"\x82\x7e\xff\xff" + b"x" * 65535),
        (wire.BINARY, b"x" * 65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" + b"x" * 65536),
        (wire.CLOSE, b"\x03\xe8", b"\x88\x02\x03\xe8"),
        (wire.PING, b"", b"\x89\x00"),
        (wire.PONG, b"hi", b"\x8a\x02hi"),
    ],
)
def test_every_length_encoding(opcode: int, payload: bytes, expected: bytes) -> None:
    assert wire.server_frame(opcode, payload) == expected


@pytest.mark.parametrize("opcode", [wire.CLOSE, wire.PING, wire.PONG])
def test_a_control_frame_over_125_bytes_or_fragmented_is_refused(opcode: int) -> None:
    with pytest.raises(ValueError, match="125 bytes"):
        wire.server_frame(opcode, b"x" * 126)
    with pytest.raises(ValueError, match="125 bytes"):
        wire.server_frame(opcode, b"", fin=False)


def _parsed(frame: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(frame)
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None)
    try:
        next(parser)
    except StopIteration as done:
        parsed: Frame = done.value
        return parsed
    raise AssertionError("the frame was not complete")


@given(
    opcode=st.sampled_from([wire.TEXT, wire.BINARY, 0x0]),
    payload=st.binary(max_size=70_000)
    | st.sampled_from([b"x" * 125, b"x" * 126, b"x" * 65535, b"x" * 65536]),
    fin=st.booleans(),
)
def test_data_frames_match_websockets_serialization(opcode: int, payload: bytes, fin: bool) -> None:
    ours = wire.server_frame(opcode, payload, fin)
    assert ours == Frame(Opcode(opcode), payload, fin).serialize(mask=False)
    parsed = _parsed(ours)
    assert (parsed.opcode, parsed.data, parsed.fin) == (opcode, payload, fin)
    # RSV1 (a compressed message; websockets checks it against its extensions, so by hand).
    assert wire.server_frame(opcode, payload, fin, 0x40) == bytes((ours[0] | 0x40,)) + ours[1:]


@given(opcode=st.sampled_from([wire.CLOSE, wire.PING, wire.PONG]), payload=st.binary(max_size=125))
def test_control_frames_match_websockets_serialization(opcode: int, payload: bytes) -> None:
    assert wire.server_frame(opcode, payload) == Frame(Opcode(opcode), payload).serialize(mask=False)


def test_a_broadcast_frame_is_built_once_per_payload_and_format() -> None:
    payload = b'{"event":"news","data":"x"}'
    text = wire.message_frame(wire.TEXT, payload)
    assert wire.message_frame(wire.TEXT, payload) is text  # the next member: the same bytes object
    binary = wire.message_frame(wire.BINARY, payload)
    assert binary == wire.server_frame(wire.BINARY, payload)
    assert wire.message_frame(wire.TEXT, payload) is text  # alternating formats keep both
    equal = bytes(bytearray(payload))  # an equal payload of another emit: built again, equal
    assert equal is not payload
    again = wire.message_frame(wire.TEXT, equal)
    assert again == text
    assert again is not text
