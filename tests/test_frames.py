"""The frame parser alone: tables of frames, and a differential test against ``websockets``.

The reference is the ``websockets`` library's sans-I/O server protocol (``ServerProtocol`` in the
OPEN state, ``receive_data()`` then ``events_received()``, ``max_size`` set to our
``max_message_size``). It returns frames, not messages, and leaves the UTF-8 check of text
messages to its I/O layers; `Reference` adds that part as RFC 6455 section 8.1 asks, fragment by
fragment, failing with 1007 on the fragment where the bytes stop being UTF-8.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import struct
import tracemalloc
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.frames import Close as WsClose
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from tests.polling import wait_until
from tests.rawclient import RawClient
from tests.wsframes import client_frame, close_payload
from tornado_websockets.frames import (
    MAX_FRAGMENTS,
    Close,
    Event,
    Failure,
    FrameParser,
    Ping,
    Pong,
    default_mask,
    python_mask,
)


def parse(stream: bytes, max_message_size: int | None = 2**20, chunk: int | None = None) -> list[Event]:
    parser = FrameParser(max_message_size)
    if chunk is None:
        return parser.feed(stream)
    events: list[Event] = []
    for start in range(0, len(stream), chunk):
        events += parser.feed(stream[start : start + chunk])
    return events


# Tables --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [None, 1, 3, 7])
def test_messages_and_control_frames_in_order(chunk: int | None) -> None:
    stream = (
        client_frame(0x1, b"hello")
        + client_frame(0x2, b"\x00\xff")
        + client_frame(0x1, "é".encode()[:1], fin=False)
        + client_frame(0x9, b"ping")
        + client_frame(0x0, "é".encode()[1:] + b"!", fin=False)
        + client_frame(0xA, b"pong")
        + client_frame(0x0, b"", fin=True)
        + client_frame(0x1, b"x" * 126)
        + client_frame(0x2, b"y" * 65536)
        + client_frame(0x8, close_payload(1000, b"bye"))
        + client_frame(0x1, b"after the close: ignored")
    )
    assert parse(stream, chunk=chunk) == [
        "hello",
        b"\x00\xff",
        Ping(b"ping"),
        Pong(b"pong"),
        "é!",
        "x" * 126,
        b"y" * 65536,
        Close(1000, "bye"),
    ]


@pytest.mark.parametrize(
    ("stream", "code"),
    [
        (client_frame(0x3, b""), 1002),  # reserved data opcode
        (client_frame(0xB, b""), 1002),  # reserved control opcode
        (client_frame(0x1, b"x", masked=False), 1002),  # clients must mask
        (client_frame(0x1, b"x", rsv=0b100), 1002),  # RSV1 without an extension
        (client_frame(0x1, b"x", rsv=0b001), 1002),
        (client_frame(0x9, b"x" * 126), 1002),  # control frame over 125 bytes
        (client_frame(0x9, b"x", fin=False), 1002),  # fragmented control frame
        (client_frame(0x0, b"x"), 1002),  # nothing to continue
        (client_frame(0x1, b"a", fin=False) + client_frame(0x1, b"b"), 1002),  # message not finished
        (client_frame(0x8, b"\x03"), 1002),  # close payload of one byte
        (client_frame(0x8, close_payload(1005)), 1002),  # a code that may not be sent
        (client_frame(0x8, close_payload(999)), 1002),
        (client_frame(0x8, close_payload(5000)), 1002),
        (client_frame(0x1, b"a", fin=False) + client_frame(0x8, close_payload(1000)), 1002),
        (client_frame(0x1, b"\xff"), 1007),
        (client_frame(0x1, b"\xce", fin=False) + client_frame(0x0, b"A"), 1007),  # split, then broken
        (client_frame(0x1, b"\xce", fin=False) + client_frame(0x0, b""), 1007),  # truncated at the end
        (client_frame(0x8, close_payload(1000, b"\xff")), 1007),
        (client_frame(0x1, b"x" * 1001), 1009),
        (client_frame(0x1, b"x" * 600, fin=False) + client_frame(0x0, b"x" * 401), 1009),
    ],
)
def test_violations_fail_with_their_close_code(stream: bytes, code: int) -> None:
    events = parse(stream, max_message_size=1000)
    assert isinstance(events[-1], Failure)
    assert events[-1].code == code
    assert parse(stream, max_message_size=1000, chunk=1)[-1] == events[-1]


def test_a_header_that_condemns_its_frame_fails_before_the_payload_arrives() -> None:
    parser = FrameParser(max_message_size=1000)
    # 1009 from the length alone: the megabyte announced is never buffered.
    assert parser.feed(client_frame(0x2, b"z" * 2**20)[:14]) == [Failure(1009, "message too big")]
    assert parser.failed
    assert parser.feed(b"z" * 2**20) == []
    assert parser.discarded == 2**20 + 14
    # Afterwards only the client's close frame counts, so the handshake can finish.
    assert parser.feed(client_frame(0x1, b"ignored") + client_frame(0x8, close_payload(1009))) == [
        Close(1009, "")
    ]
    assert parser.closed


def test_lengths_may_use_a_longer_encoding_than_needed() -> None:
    stream = client_frame(0x1, b"abc", length_bytes=2) + client_frame(0x2, b"def", length_bytes=8)
    assert parse(stream, chunk=1) == ["abc", b"def"]


def test_an_empty_close_has_no_code() -> None:
    assert parse(client_frame(0x8, b"")) == [Close(None, "")]


def test_max_message_size_is_checked() -> None:
    with pytest.raises(ValueError, match="should be positive"):
        FrameParser(-1)


@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4))
def test_the_c_mask_and_the_python_mask_agree(data: bytes, key: bytes) -> None:
    assert default_mask()(key, data) == python_mask(key, data)
    assert python_mask(key, python_mask(key, data)) == data


# The reference ---------------------------------------------------------------------------------


@dataclass
class Reference:
    """``websockets``' ServerProtocol, with the messages assembled from its frames."""

    max_size: int
    protocol: ServerProtocol = field(init=False)
    events: list[Event] = field(default_factory=list)
    failure: int | None = None
    closed: bool = False
    _opcode: Opcode | None = None
    _parts: list[bytes] = field(default_factory=list)
    _decoder: codecs.IncrementalDecoder | None = None

    def __post_init__(self) -> None:
        self.protocol = ServerProtocol(state=State.OPEN, max_size=self.max_size)

    @property
    def done(self) -> bool:
        return self.failure is not None or self.closed

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self.protocol.receive_data(data)
        for frame in self.protocol.events_received():
            self._frame(frame)
            if self.done:
                return
        if self.protocol.parser_exc is not None:
            assert self.protocol.close_sent is not None
            self.failure = self.protocol.close_sent.code

    def _frame(self, frame: Frame) -> None:
        data = bytes(frame.data)
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._opcode = frame.opcode
            self._parts = []
            self._decoder = codecs.getincrementaldecoder("utf-8")() if frame.opcode is Opcode.TEXT else None
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            self._parts.append(data)
            if self._decoder is not None:
                try:
                    self._decoder.decode(data, frame.fin)
                except UnicodeDecodeError:
                    self.failure = 1007
                    return
            if frame.fin:
                message = b"".join(self._parts)
                self.events.append(message.decode() if self._opcode is Opcode.TEXT else message)
        elif frame.opcode is Opcode.PING:
            self.events.append(Ping(data))
        elif frame.opcode is Opcode.PONG:
            self.events.append(Pong(data))
        else:
            close = WsClose.parse(data)
            code = None if close.code == 1005 else close.code
            self.events.append(Close(code, close.reason))
            self.closed = True


def ours(chunks: list[bytes], max_size: int) -> tuple[list[Event], int | None]:
    """Our events up to the first failure or close, and the failure's code."""
    parser = FrameParser(max_size)
    events: list[Event] = []
    for chunk in chunks:
        for event in parser.feed(chunk):
            if isinstance(event, Failure):
                return events, event.code
            events.append(event)
            if isinstance(event, Close):
                return events, None
    return events, None


# The streams -----------------------------------------------------------------------------------

LENGTHS = [0, 1, 2, 125, 126, 127, 1000, 65535, 65536, 70000]
CLOSE_CODES = [*range(999, 1017), 2999, 3000, 4999, 5000, 0, 65535]
BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xce"]


@st.composite
def payloads(draw: st.DrawFn, text: bool) -> bytes:
    if draw(st.integers(0, 9)) == 0:  # one of the lengths around the encodings' boundaries
        length = draw(st.sampled_from(LENGTHS))
        return (
            (b"e\xcc\x81" * (length // 3 + 1))[:length]
            if text
            else (bytes(range(256)) * (length // 256 + 1))[:length]
        )
    if text:
        data = draw(st.text(max_size=30)).encode("utf-8", "surrogatepass")
        if draw(st.integers(0, 4)) == 0:  # broken somewhere, often at the very end
            at = len(data) if draw(st.booleans()) else draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.sampled_from(BAD_UTF8)) + data[at:]
        return data
    return draw(st.binary(max_size=40))


@st.composite
def message_frames(draw: st.DrawFn) -> list[bytes]:
    """A text or binary message cut into fragments (cut anywhere, even inside a character),
    with control frames between them."""
    text = draw(st.booleans())
    data = draw(payloads(text))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    frames = []
    for index, piece in enumerate(pieces):
        opcode = (0x1 if text else 0x2) if index == 0 else 0x0
        frames.append(client_frame(opcode, piece, fin=index == len(pieces) - 1, **draw(frame_flags())))
        if index < len(pieces) - 1 and draw(st.booleans()):
            frames.append(draw(control_frame()))
    return frames


@st.composite
def frame_flags(draw: st.DrawFn) -> dict[str, object]:
    """Mostly what a client should send; sometimes RSV bits, no mask or a longer length."""
    flags: dict[str, object] = {}
    if draw(st.integers(0, 30)) == 0:
        flags["rsv"] = draw(st.integers(1, 7))
    if draw(st.integers(0, 30)) == 0:
        flags["masked"] = False
    if draw(st.integers(0, 15)) == 0:
        flags["length_bytes"] = draw(st.sampled_from([2, 8]))
    return flags


@st.composite
def control_frame(draw: st.DrawFn) -> bytes:
    opcode = draw(st.sampled_from([0x9, 0xA, 0x8]))
    if opcode == 0x8:
        kind = draw(st.integers(0, 5))
        if kind == 0:
            payload = b""
        elif kind == 1:
            payload = b"\x03"
        else:
            reason = draw(st.text(max_size=10)).encode() if kind < 5 else draw(st.sampled_from(BAD_UTF8))
            payload = close_payload(draw(st.sampled_from(CLOSE_CODES)), reason)
        if draw(st.booleans()):
            return client_frame(opcode, payload)  # a well-formed close frame, half the time
    else:
        payload = draw(st.binary(max_size=130 if draw(st.integers(0, 10)) == 0 else 20))
    fin = draw(st.integers(0, 20)) != 0
    return client_frame(opcode, payload, fin=fin, **draw(frame_flags()))


@st.composite
def stray_frame(draw: st.DrawFn) -> bytes:
    """A frame on its own: any opcode, including reserved ones, and any flag."""
    opcode = draw(st.integers(0, 15))
    payload = draw(payloads(text=opcode == 0x1)) if opcode < 8 else draw(st.binary(max_size=20))
    return client_frame(opcode, payload, fin=draw(st.booleans()), **draw(frame_flags()))


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[bytes], int, list[bytes]]:
    """Frames, where the stream is cut (inside the frame at that point, or at the end), and chunks."""
    frames: list[bytes] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.integers(0, 9))
        if kind < 6:
            frames += draw(message_frames())
        elif kind < 9:
            frames.append(draw(control_frame()))
        else:
            frames.append(draw(stray_frame()))
    stream = b"".join(frames)
    cut = len(stream) if draw(st.booleans()) else draw(st.integers(0, len(stream)))
    sizes = draw(st.lists(st.integers(1, 200), min_size=1, max_size=8))
    chunks, start, index = [], 0, 0
    while start < cut:
        step = sizes[index % len(sizes)] * (1 if index % 3 else 37)
        chunks.append(stream[start : min(start + step, cut)])
        start += step
        index += 1
    return frames, cut, chunks


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.sampled_from([2**20, 65536, 1000, 125]))
def test_same_messages_and_close_code_as_websockets(
    stream: tuple[list[bytes], int, list[bytes]], max_size: int
) -> None:
    frames, cut, chunks = stream
    reference = Reference(max_size)
    for chunk in chunks:
        reference.feed(chunk)
    events, failure = ours(chunks, max_size)
    if failure is not None and not reference.done:
        # Ours failed from a frame's header while the payload was still missing: the reference
        # judges a frame once it has all of it, so give it the rest of that frame.
        whole = b"".join(frames)
        end = next(end for end in _frame_ends(frames) if end >= cut)
        reference.feed(whole[cut:end])
    assert events == reference.events
    assert failure == reference.failure


def _frame_ends(frames: list[bytes]) -> list[int]:
    ends, total = [], 0
    for frame in frames:
        total += len(frame)
        ends.append(total)
    return ends


def test_the_reference_sees_what_the_tables_say() -> None:
    """The reference set-up itself: a close code of 1005 cannot be sent, as in the table above."""
    reference = Reference(100)
    reference.feed(client_frame(0x8, struct.pack("!H", 1005)))
    assert reference.failure == 1002


@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_after_a_failure_only_the_clients_close_frame_is_read_in_any_chunks(chunk: int) -> None:
    bad = client_frame(0x1, b"x" * 300, rsv=0b010)  # fails from its header
    stream = (
        bad
        + client_frame(0x2, b"y" * 70000)  # skipped, whatever its length encoding
        + client_frame(0x9, b"ping")  # not answered any more
        + client_frame(0x8, close_payload(1002, b"ok"))
        + client_frame(0x1, b"after")
    )
    events = parse(stream, chunk=chunk)
    assert events == [Failure(1002, "reserved bits must be 0"), Close(1002, "ok")]


def test_the_frame_that_failed_is_never_read_as_the_clients_close() -> None:
    # A close frame with a reserved bit fails; the answer must be a later close frame.
    parser = FrameParser()
    assert parser.feed(client_frame(0x8, close_payload(1000), rsv=0b100)) == [
        Failure(1002, "reserved bits must be 0")
    ]
    assert not parser.closed
    assert parser.feed(client_frame(0x8, close_payload(1000))) == [Close(1000, "")]


# Fragments: one buffer per message, and a bound on how many frames it comes in ---------------


def fragmented(payloads: list[bytes], opcode: int = 0x2) -> bytes:
    """One message in ``len(payloads)`` frames."""
    last = len(payloads) - 1
    return b"".join(
        client_frame(opcode if i == 0 else 0x0, payload, fin=i == last) for i, payload in enumerate(payloads)
    )


@pytest.mark.parametrize(
    ("payloads", "max_fragments", "expected"),
    [
        ([b"a", b"b", b"c"], 3, [b"abc"]),
        ([b"a", b"b", b"c", b"d"], 3, [Failure(1009, "too many fragments")]),
        ([b"a"] + [b""] * 3, 3, [Failure(1009, "too many fragments")]),  # empty ones count too
        ([b"a", b""], 2, [b"a"]),
        ([b"x"] * MAX_FRAGMENTS, MAX_FRAGMENTS, [b"x" * MAX_FRAGMENTS]),
        ([b"x"] * (MAX_FRAGMENTS + 1), MAX_FRAGMENTS, [Failure(1009, "too many fragments")]),
        ([b""] * 5000, None, [b""]),
    ],
)
@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_a_message_in_too_many_fragments_fails_with_1009(
    payloads: list[bytes], max_fragments: int | None, expected: list[Event], chunk: int | None
) -> None:
    parser = FrameParser(max_fragments=max_fragments)
    stream = fragmented(payloads)
    events: list[Event] = []
    for start in range(0, len(stream), chunk or len(stream)):
        events += parser.feed(stream[start : start + (chunk or len(stream))])
    assert events == expected


def test_the_default_bound_on_fragments_is_max_fragments() -> None:
    assert FrameParser().max_fragments == MAX_FRAGMENTS
    with pytest.raises(ValueError, match="max_fragments should be 1 or more"):
        FrameParser(max_fragments=0)


@pytest.mark.parametrize("opcode", [0x1, 0x2])
def test_text_split_anywhere_in_fragments_is_one_message(opcode: int) -> None:
    text = "héllo wörld €".encode()
    payloads = [text[i : i + 1] for i in range(len(text))]
    expected = text.decode() if opcode == 0x1 else text
    assert parse(fragmented(payloads, opcode), chunk=3) == [expected]
    # A parser reused for the next message starts from an empty buffer.
    parser = FrameParser()
    assert parser.feed(fragmented(payloads, opcode) + fragmented([b"a", b"b"], opcode)) == [
        expected,
        "ab" if opcode == 0x1 else b"ab",
    ]


def retained_by(parser: FrameParser, stream: bytes, step: int = 60_000) -> int:
    """Bytes the parser still holds after reading ``stream`` (the message is not finished)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, len(stream), step):
            assert parser.feed(stream[start : start + step]) == []
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_empty_fragments_hold_no_memory() -> None:
    """Issue 22 item 4: 3,000,000 empty continuations grew the server by 23 MiB (a list entry each)."""
    count = 300_000
    stream = client_frame(0x1, b"x", fin=False) + client_frame(0x0, b"", fin=False, key=b"abcd") * count
    held = retained_by(FrameParser(max_fragments=None), stream)
    print(f"\n{count} empty fragments: the parser holds {held / 2**10:.1f} KiB")  # noqa: T201 - the figure the issue asks for
    assert held < 64 * 1024  # a list of 300,000 references alone is 2.3 MiB


def test_a_message_in_4_byte_fragments_costs_its_bytes() -> None:
    """Issue 22 item 4: 1,000,000 bytes in 4-byte fragments cost 13 MiB (an object per fragment)."""
    size = 1_000_000
    stream = client_frame(0x2, b"abcd", fin=False) + client_frame(0x0, b"abcd", fin=False) * (size // 4 - 1)
    held = retained_by(FrameParser(max_message_size=None, max_fragments=None), stream)
    print(f"\n{size} bytes in 4-byte fragments: the parser holds {held / 2**20:.2f} MiB")  # noqa: T201 - the figure the issue asks for
    assert held < 2 * size


async def test_a_flood_of_empty_fragments_is_closed_with_1009_over_a_real_socket(
    connection_path: bool,
) -> None:
    """A flood of empty continuation frames: the server closes the message at `MAX_FRAGMENTS`
    (on a connection owned after the upgrade, then on Tornado's stream: ``connection_path``)."""
    from tornado_websockets.testing import serve
    from tornado_websockets.websocket import WebSocket

    ws = WebSocket("/fragments")
    sent = 200_000  # 1.2 MB of headers, far past the bound (the server drains 16 MiB at most)
    tracemalloc.start()
    try:
        async with serve() as server:
            client = await RawClient.connect(server.port, "/fragments")
            await wait_until(lambda: len(ws.handlers) == 1)
            before = tracemalloc.get_traced_memory()[0]
            client.writer.write(client_frame(0x1, b"{", fin=False))
            client.writer.write(client_frame(0x0, b"", fin=False, key=b"abcd") * sent)
            with contextlib.suppress(ConnectionError):  # the server may stop reading once it closed
                await asyncio.wait_for(client.writer.drain(), 10)
            grown = tracemalloc.get_traced_memory()[0] - before
            opcode, payload = await asyncio.wait_for(client.read_frame(), 10)
            assert (opcode, payload[:2]) == (0x8, struct.pack("!H", 1009))
            assert payload[2:] == b"too many fragments"
            print(f"\n{sent} empty fragments sent: the server process grew by {grown / 2**20:.2f} MiB")  # noqa: T201 - the figure the issue asks for
            client.close()
            await wait_until(lambda: not ws.handlers)
    finally:
        tracemalloc.stop()
