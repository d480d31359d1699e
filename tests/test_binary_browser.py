"""Binary payloads in real headless Chromium: a page uploads a 5 MiB file as bytes through ``emit``,
the server keeps its SHA-256 and sends a thumbnail back as bytes, which the page shows; beside it, a
page speaking the original (0.2) client's wire format, plain JSON text with no subprotocol, still
chats and gets the thumbnail as base64 (docs/protocol.rst)."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.web
from playwright.sync_api import Browser

from tests.browser import STATIC_ROOT, ServerThread, Tab
from tests.client_pages import CLASSIC_PAGE, HELPERS
from tornado_websockets.limits import Limits
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

SIZE = 5 * 1024 * 1024

# What the original client (0.2) did on the wire: new WebSocket(url), no subprotocol, JSON text
# {"event", "data"} both ways, data as JSON.parse gives it.
ORIGINAL_PAGE = f"""<!doctype html>
<meta charset="utf-8"><title>original client</title>
{HELPERS}
<img id="thumb" alt="thumbnail">
<script>
window.received = [];
window.socket = new WebSocket(`ws://${{location.host}}/ws/files`);
socket.onmessage = (message) => {{
  received.push(typeof message.data === "string" ? JSON.parse(message.data) : "a binary message");
  const frame = received[received.length - 1];
  if (frame.event === "stored") {{
    document.getElementById("thumb").src = "data:image/png;base64," + frame.data.png;
  }}
}};
window.emit = (event, data) => socket.send(JSON.stringify({{event, data}}));
</script>
"""

PAGES = {"classic": CLASSIC_PAGE, "original": ORIGINAL_PAGE}


def png(width: int, height: int, rgb: bytes) -> bytes:
    """A solid ``rgb`` PNG, built by hand (no imaging library needed)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack("!I", len(body)) + kind + body + struct.pack("!I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + rgb * width for _ in range(height))
    header = struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class PageHandler(tornado.web.RequestHandler):
    def get(self, name: str) -> None:
        if name not in PAGES:
            raise tornado.web.HTTPError(404)
        self.write(PAGES[name])


stored: dict[str, str] = {}
received: list[dict[str, Any]] = []


def register() -> None:
    files = WebSocket("/files", limits=Limits(max_message_size=8 * 1024 * 1024))

    @files.on
    async def upload(socket: WebSocketHandler, data: dict[str, Any]) -> dict[str, Any]:
        content = data["file"]
        digest = hashlib.sha256(content).hexdigest()
        stored[data["name"]] = digest
        thumbnail = png(24, 16, content[:3])  # coloured by the file's first bytes
        socket.emit("thumb", {"png": thumbnail, "sha256": digest})
        files.emit("stored", {"name": data["name"], "png": thumbnail}, skip=socket)
        return {"sha256": digest, "size": len(content), "bytes": isinstance(content, bytes)}

    @files.on
    async def echo(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("echo", {"n": data["n"], "value": data["value"], "type": type(data["value"]).__name__})

    @files.on
    async def mirror(data: dict[str, Any]) -> dict[str, Any]:
        received.append(data)
        return data

    @files.on
    async def chat(data: dict[str, Any]) -> None:
        files.emit("chat", {"text": str(data.get("text", ""))})


def register_feed() -> WebSocket:
    """A path with recovery on: what a client misses while it is away is replayed when it comes back."""
    return WebSocket("/feed", recover=60)


feeds: list[WebSocket] = []


@pytest.fixture
def server() -> Iterator[ServerThread]:
    stored.clear()
    received.clear()
    register()
    feeds[:] = [register_feed()]
    thread = ServerThread(
        [
            (r"/page/(\w+)", PageHandler),
            (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(STATIC_ROOT)}),
        ]
    )
    thread.start()
    yield thread
    thread.close()


def test_a_page_uploads_5_mib_as_bytes_and_shows_the_thumbnail_beside_an_original_client(
    browser: Browser, server: ServerThread
) -> None:
    original = Tab.open(browser, server.url("/page/original"))
    page = Tab.open(browser, server.url("/page/classic"))
    try:
        original.page.wait_for_function("() => socket.readyState === 1")
        result = page.page.evaluate(
            """async (size) => {
            const content = new Uint8Array(size);
            for (let at = 0; at < size; at += 65536) crypto.getRandomValues(content.subarray(at, at + 65536));
            content.set([200, 40, 90]);
            const digest = [...new Uint8Array(await crypto.subtle.digest("SHA-256", content))]
                .map((b) => b.toString(16).padStart(2, "0")).join("");
            const ws = new TornadoWebSocket("/files", {binary: true});
            await nextEvent(ws, "open");
            const thumb = nextEvent(ws, "thumb", 30000);
            const file = new Blob([content]);
            const reply = await ws.request("upload", {name: "big.bin", file}, {timeout: 30000});
            const binary = ws.binary;
            const data = await thumb;
            const img = document.createElement("img");
            document.body.append(img);
            img.src = URL.createObjectURL(new Blob([data.png], {type: "image/png"}));
            await img.decode();
            const canvas = document.createElement("canvas");
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const context = canvas.getContext("2d");
            context.drawImage(img, 0, 0);
            const pixel = [...context.getImageData(3, 3, 1, 1).data];
            ws.close();
            const isUint8Array = data.png instanceof Uint8Array;
            const shape = [img.naturalWidth, img.naturalHeight];
            return {digest, reply, sha256: data.sha256, binary, isUint8Array, size: shape, pixel};
        }""",
            SIZE,
        )
        assert result["reply"] == {"sha256": result["digest"], "size": SIZE, "bytes": True}
        assert result["sha256"] == result["digest"] == stored["big.bin"]
        assert result["binary"] is True
        assert result["isUint8Array"] is True
        assert result["size"] == [24, 16]
        assert result["pixel"] == [200, 40, 90, 255]

        # Beside it, the original client: the thumbnail as base64 in JSON text, shown, and chat works.
        original.page.wait_for_function("() => document.getElementById('thumb').naturalWidth === 24")
        original.page.evaluate("() => emit('chat', {text: 'still here'})")
        original.page.wait_for_function("() => received.some((f) => f.event === 'chat')")
        frames = original.page.evaluate("() => received")
        assert "a binary message" not in frames
        assert [f["event"] for f in frames] == ["stored", "chat"]
        assert frames[1]["data"] == {"text": "still here"}
        assert original.errors == []
        assert page.errors == []
    finally:
        page.close()
        original.close()


def test_every_kind_of_bytes_queued_before_open_arrives_in_order(
    browser: Browser, server: ServerThread
) -> None:
    tab = Tab.open(browser, server.url("/page/classic"))
    try:
        result = tab.page.evaluate("""async () => {
            const run = async (options) => {
                const ws = new TornadoWebSocket("/files", {...options, auto_connect: false});
                const echoed = [];
                ws.on("echo", (data) => echoed.push(data));
                const buffer = new Uint8Array([1, 2, 3, 4]).buffer;
                const values = [buffer, new Int16Array([-2, 513]), new DataView(buffer, 1, 2),
                                new Blob([new Uint8Array([9, 8])]), "text", new Uint8Array(buffer, 2)];
                values.forEach((value, n) => ws.emit("echo", {n, value}));  // queued: the socket is not open
                const queued = ws.queued;
                ws.connect();
                await until(() => echoed.length === values.length);
                const binary = ws.binary;
                ws.close();
                return {queued, binary, echoed: echoed.map(({n, value, type}) =>
                    [n, type, value instanceof Uint8Array ? ["u8", ...value] : value])};
            };
            return {binary: await run({binary: true}), json: await run({})};
        }""")
    finally:
        tab.close()
    assert tab.errors == []
    # Bytes in, bytes back: the server sees bytes, the page gets Uint8Array, in the order emitted.
    assert result["binary"]["binary"] is True
    assert (
        result["binary"]["queued"] == 3
    )  # the Blob's frame, and those after it, wait for the Blob to be read
    assert result["binary"]["echoed"] == [
        [0, "bytes", ["u8", 1, 2, 3, 4]],
        [1, "bytes", ["u8", 254, 255, 1, 2]],  # an Int16Array's bytes, little-endian as in memory
        [2, "bytes", ["u8", 2, 3]],
        [3, "bytes", ["u8", 9, 8]],
        [4, "str", "text"],
        [5, "bytes", ["u8", 3, 4]],
    ]
    # Without binary: true, the same bytes travel as base64 strings both ways.
    assert result["json"]["binary"] is False
    assert result["json"]["echoed"] == [
        [0, "str", "AQIDBA=="],
        [1, "str", "/v8BAg=="],
        [2, "str", "AgM="],
        [3, "str", "CQg="],
        [4, "str", "text"],
        [5, "str", "AwQ="],
    ]


def test_binary_frames_missed_while_away_are_replayed_in_order(
    browser: Browser, server: ServerThread
) -> None:
    tab = Tab.open(browser, server.url("/page/classic"))
    feed = feeds[0]

    async def emit(n: int) -> None:
        feed.emit("said", {"n": n, "b": bytes([n]) * 3})

    try:
        tab.page.evaluate("""async () => {
            window.ws = new TornadoWebSocket("/feed", {binary: true, reconnect: {initial: 300, jitter: 0}});
            window.said = [];
            ws.on("said", (data, frame) => said.push([data.n, [...data.b], frame.seq]));
            await nextEvent(ws, "open");
            await until(() => ws.websocket.readyState === 1);
        }""")
        server.run(emit(1))
        tab.page.wait_for_function("() => said.length === 1")
        tab.page.evaluate("() => ws.websocket.close(4500)")  # dropped: the client comes back by itself
        tab.page.wait_for_function("() => ws.state !== 'open'")
        for n in (2, 3):
            server.run(emit(n))  # missed while away
        tab.page.wait_for_function("() => said.length === 3", timeout=10_000)
        said = tab.page.evaluate("() => said")
    finally:
        tab.close()
    assert tab.errors == []
    first = said[0][2]
    assert said == [[1, [1, 1, 1], first], [2, [2, 2, 2], first + 1], [3, [3, 3, 3], first + 2]]


INTEGERS = [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1, -1, -32, -33, -128, -129]
INTEGERS += [-32768, -32769, -(2**31), -(2**31) - 1, -(2**53 - 1)]
LENGTHS = [0, 31, 32, 255, 256, 65535, 65536]


def test_the_clients_messagepack_codec_agrees_with_the_servers_at_every_size(
    browser: Browser, server: ServerThread
) -> None:
    """Every format boundary of the specification (fixint to 64 bits, str 8/16/32, bin 8/16/32,
    array and map 16), there and back: the server reads what the page meant, the page reads the reply."""
    tab = Tab.open(browser, server.url("/page/classic"))
    try:
        result = tab.page.evaluate(
            """async ([integers, lengths]) => {
            const ws = new TornadoWebSocket("/files", {binary: true});
            await nextEvent(ws, "open");
            const bytes = (n) => Uint8Array.from({length: n}, (_, i) => i % 251);
            const data = {
                integers, floats: [1.5, -0.25, 1e300, NaN], constants: [null, true, false],
                strings: lengths.map((n) => "é".repeat(Math.floor(n / 2)) + "x".repeat(n % 2)),
                binaries: lengths.map(bytes),
                array16: Array.from({length: 16}, (_, i) => i),
                array15: Array.from({length: 15}, (_, i) => i),
                map16: Object.fromEntries(Array.from({length: 16}, (_, i) => [`k${i}`, i])),
                when: new Date(Date.UTC(2026, 0, 2)), skipped: undefined, nested: {a: [{b: [bytes(3)]}]},
            };
            const reply = await ws.request("mirror", data, {timeout: 30000});
            ws.close();
            const sum = (value) => value.reduce((a, b) => a + b, 0);
            const entries = (value) => Object.entries(value).map(([k, v]) => [k, plain(v)]);
            const plain = (value) => value instanceof Uint8Array ? {u8: value.length, sum: sum(value)}
                : Array.isArray(value) ? value.map(plain)
                : value !== null && typeof value === "object" ? Object.fromEntries(entries(value))
                : value;
            return plain(reply);
        }""",
            [INTEGERS, LENGTHS],
        )
    finally:
        tab.close()
    assert tab.errors == []

    def expected_bytes(n: int) -> bytes:
        return bytes(i % 251 for i in range(n))

    strings = ["é" * (n // 2) + "x" * (n % 2) for n in LENGTHS]
    [data] = received
    assert data["integers"] == INTEGERS
    assert data["floats"] == [1.5, -0.25, 1e300, None]  # NaN is null, as in JSON
    assert data["constants"] == [None, True, False]
    assert data["strings"] == strings
    assert data["binaries"] == [expected_bytes(n) for n in LENGTHS]
    assert data["array16"] == list(range(16))
    assert data["array15"] == list(range(15))
    assert data["map16"] == {f"k{i}": i for i in range(16)}
    assert data["when"] == "2026-01-02T00:00:00.000Z"  # toJSON, as JSON.stringify does
    assert "skipped" not in data
    assert data["nested"] == {"a": [{"b": [expected_bytes(3)]}]}
    # And back: the page decoded the server's MessagePack to the same values.
    summed = [{"u8": n, "sum": sum(expected_bytes(n))} for n in LENGTHS]
    assert result["binaries"] == summed
    assert result["integers"] == INTEGERS
    assert result["strings"] == strings
    assert result["map16"] == data["map16"]
    assert result["nested"] == {"a": [{"b": [{"u8": 3, "sum": 3}]}]}
