"""The JavaScript client when things go wrong, in real headless Chromium.

Final closes ("ended"), attempts that never open ("unreachable"), a server that goes silent behind a
frozen TCP proxy (the liveness check), a jump in a stream's numbers (gap recovery) and the bounded
``?recover=`` request. Misbehaving servers are small Tornado handlers sending crafted frames.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import tornado.web
import tornado.websocket
from playwright.sync_api import Browser

from tests.browser import STATIC_ROOT, ServerThread, Tab
from tests.client_pages import CLASSIC_PAGE
from tests.crafted_servers import LEFT, ROOMS, Crafted, GapServer, RoomsServer, token
from tests.freezable_proxy import FreezableProxy
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

#: The longest encoded ``?recover=`` value the client sends (its MAX_RECOVER_LENGTH).
MAX_RECOVER_LENGTH = 4096


class PageHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(CLASSIC_PAGE)


class PongServer(Crafted):
    """Answers the client's liveness probe with "pong", as a server that reserves "ping" does."""

    urls: ClassVar[list[str]] = []

    def script(self, recover: dict[str, Any] | None) -> None:
        self.send("hello", {})

    def on_message(self, message: str | bytes) -> None:
        if json.loads(message).get("event") == "ping":
            self.send("pong", {})


#: What the registered paths saw: opens per path, guard calls, and whether the guard refuses.
seen: dict[str, Any] = {}


def register_websockets() -> None:
    """Echo, a path that closes every connection with the code in its URL, a guarded one, 1,500 rooms."""
    seen.clear()
    seen.update(opens=0, guard_calls=0, refuse=True)
    echo = WebSocket("/echo")

    @echo.on(name="echo")
    async def echo_back(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("echo", data)

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

    @many.on
    async def join(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        for n in range(int(data["rooms"])):
            socket.join(f"room-{n:04d}")
        socket.emit("joined_all", {})

    @many.on
    async def say(data: dict[str, Any]) -> None:
        many.to(str(data["room"])).emit("said", data)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    register_websockets()
    for crafted in (GapServer, RoomsServer, PongServer):
        crafted.urls.clear()
    thread = ServerThread(
        [
            (r"/page/classic", PageHandler),
            (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(STATIC_ROOT)}),
            (r"/ws/crafted/gap", GapServer),
            (r"/ws/crafted/rooms", RoomsServer),
            (r"/ws/crafted/pong", PongServer),
        ]
    )
    thread.start()
    yield thread
    thread.close()


@pytest.fixture
def tab(browser: Browser, server: ServerThread) -> Iterator[Tab]:
    opened = Tab.open(browser, server.url("/page/classic"))
    yield opened
    opened.close()
    assert opened.errors == [], "uncaught errors in the page"


def recover_of(url: str) -> tuple[str, dict[str, Any]]:
    """The raw (encoded) ``recover`` value of a URL, and its decoded content."""
    raw = dict(part.split("=", 1) for part in urllib.parse.urlsplit(url).query.split("&"))["recover"]
    return raw, json.loads(urllib.parse.unquote(raw))


# Final closes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [4001, 4000, 4099, 1008])
def test_a_final_close_ends_the_connection_until_connect(tab: Tab, code: int) -> None:
    result = tab.page.evaluate(f"""async () => {{
        const ws = new TornadoWebSocket("/closing/{code}", {{reconnect: {{initial: 10, max: 20}}}});
        const log = record(ws, "open", "close", "reconnecting", "ended");
        await until(() => log.some(([event]) => event === "ended"));
        const state = ws.state;  // "closed": no socket and no timer, so nothing will reconnect
        ws.connect();             // the page decides: once more
        await until(() => log.filter(([event]) => event === "ended").length === 2);
        return {{log, state, after: ws.state}};
    }}""")
    ended = ["ended", {"code": code, "reason": "Signed out", "final": True}, None]
    assert result == {
        "log": [["open"], ["close", code], ended, ["open"], ["close", code], ended],
        "state": "closed",
        "after": "closed",
    }
    assert seen["opens"] == 2


@pytest.mark.parametrize("code", [4100, 1011, 1013])
def test_other_close_codes_reconnect(tab: Tab, code: int) -> None:
    result = tab.page.evaluate(f"""async () => {{
        const ws = new TornadoWebSocket("/closing/{code}", {{reconnect: {{initial: 10, max: 20}}}});
        const log = record(ws, "open", "ended");
        await until(() => log.length >= 3);
        ws.close();
        return log;
    }}""")
    assert result[:3] == [["open"], ["open"], ["open"]]


@pytest.mark.parametrize(("code", "now"), [(1012, True), (4100, True), (1011, False), (1013, False)])
def test_a_restart_or_a_renewed_session_reconnects_at_once(tab: Tab, code: int, now: bool) -> None:
    """1012 (the server restarts) and 4100 (your session was renewed): no backoff, however long."""
    delays = tab.page.evaluate(f"""async () => {{
        const reconnect = {{initial: 60000, max: 60000, jitter: 0}};
        const ws = new TornadoWebSocket("/closing/{code}", {{reconnect}});
        const log = record(ws, "reconnecting");
        await until(() => log.length >= 1);
        ws.close();
        return log.map(([, data]) => data.delay);
    }}""")
    assert delays == ([0] if now else [60000])


def test_a_page_that_closes_with_a_final_code_itself_gets_no_ended(tab: Tab) -> None:
    log = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo");
        const log = record(ws, "open", "close", "ended");
        await nextEvent(ws, "open");
        ws.close(4001, "bye");
        await nextEvent(ws, "close");
        return log;
    }""")
    assert log == [["open"], ["close", 4001]]


# Attempts that never open ------------------------------------------------------------------------


def test_a_refusing_guard_leads_to_unreachable_once_per_streak(tab: Tab) -> None:
    tab.page.evaluate("""async () => {
        window.ws = new TornadoWebSocket("/guarded",
            {reconnect: {initial: 10, max: 20, jitter: 0, stable: 0}, refusedAfter: 3});
        window.log = record(ws, "open", "close", "unreachable", "reconnecting");
        await until(() => log.filter(([event]) => event === "reconnecting").length >= 6);
    }""")
    seen["refuse"] = False  # the user signed in, say: the next attempt opens
    tab.page.evaluate("""async () => {
        await nextEvent(ws, "open", 5000);
        ws.emit("echo", "in");
        await nextEvent(ws, "echo");
    }""")
    seen["refuse"] = True
    log = tab.page.evaluate("""async () => {
        const before = log.length;
        ws.websocket.close();  // a drop, not close(): the client means to come back, and is refused again
        await until(() => log.slice(before).filter(([event]) => event === "unreachable").length === 1);
        ws.close();
        return log;
    }""")
    events = [entry[0] for entry in log]
    unreachable = [entry[1] for entry in log if entry[0] == "unreachable"]
    assert unreachable == [{"attempts": 3}, {"attempts": 3}]  # once per streak; the count reset on open
    first = events.index("unreachable")
    assert events[:first] == ["close", "reconnecting", "close", "reconnecting", "close"]  # after the 3rd
    assert events[first + 1] == "reconnecting"  # and it keeps trying
    assert events.count("open") == 1
    assert [entry[1] for entry in log if entry[0] == "close"][:3] == [1006, 1006, 1006]  # a 403 looks so
    assert seen["guard_calls"] >= 10


def test_a_server_down_is_unreachable_too(tab: Tab, server: ServerThread) -> None:
    server.stop()
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo", {reconnect: {initial: 10, max: 20}, refusedAfter: 2});
        const streak = await nextEvent(ws, "unreachable", 10000);
        const state = ws.state;
        ws.close();
        return {streak, state};
    }""")
    assert result == {"streak": {"attempts": 2}, "state": "waiting"}


# Liveness ----------------------------------------------------------------------------------------


@pytest.fixture
def proxy(server: ServerThread) -> Iterator[FreezableProxy]:
    relay = FreezableProxy(server.port)
    server.run(relay.start())
    yield relay
    server.run(relay.stop())


def test_a_silent_server_is_noticed_and_the_client_reconnects(
    browser: Browser, proxy: FreezableProxy
) -> None:
    # The page comes through the proxy too, so the socket's origin is the page's (the default policy).
    tab = Tab.open(browser, f"http://127.0.0.1:{proxy.port}/page/classic")
    try:
        _freeze_and_reconnect(tab, proxy)
    finally:
        tab.close()
    assert tab.errors == []
    assert len(proxy.connections) >= 3  # the page, the first socket, the second socket


def _freeze_and_reconnect(tab: Tab, proxy: FreezableProxy) -> None:
    tab.page.evaluate("""async () => {
        window.ws = new TornadoWebSocket("/echo", {
            liveness: {idle: 200, timeout: 1500}, reconnect: {initial: 10, max: 50}});
        window.log = [];
        ws.on("open", () => log.push(["open"]));
        ws.on("close", (event) => log.push(["close", event.code, event.reason]));
        ws.emit("echo", "before");
        await nextEvent(ws, "echo");
    }""")
    proxy.freeze()  # the connection stays open for the browser, and nothing goes through any more
    result = tab.page.evaluate("""async () => {
        await until(() => log.length === 3, 15000);
        ws.emit("echo", "after");
        const echoed = await nextEvent(ws, "echo");
        ws.close();
        return {log, echoed};
    }""")
    assert result == {
        "log": [
            ["open"],
            ["close", 1006, "TornadoWebSocket: no answer from the server within 1500 ms."],
            ["open"],
        ],
        "echoed": {"message": "after"},
    }


@pytest.mark.parametrize("path", ["/echo", "/crafted/pong"])
def test_a_quiet_server_that_answers_keeps_its_connection(tab: Tab, path: str) -> None:
    # /echo answers "ping" with a warning (an unbound event); /crafted/pong as a server reserving "ping".
    result = tab.page.evaluate(f"""async () => {{
        const sent = [];
        class Spy extends WebSocket {{ send(frame) {{ sent.push(frame); super.send(frame); }} }}
        const ws = new TornadoWebSocket("{path}",
            {{WebSocket: Spy, liveness: {{idle: 100, timeout: 5000}}}});
        const log = record(ws, "open", "close", "warning", "pong");
        await until(() => sent.length >= 4, 10000);  // four probes, each after 100 ms of silence
        ws.close();
        return {{log, sent: [...new Set(sent)]}};
    }}""")
    assert result == {"log": [["open"]], "sent": ['{"event":"ping","data":{}}']}
    assert tab.warnings() == []  # the answers are the client's business, not the page's


def test_liveness_false_sends_nothing(tab: Tab) -> None:
    sent = tab.page.evaluate("""async () => {
        const sent = [];
        class Spy extends WebSocket { send(frame) { sent.push(frame); super.send(frame); } }
        const ws = new TornadoWebSocket("/echo", {WebSocket: Spy, liveness: false});
        await nextEvent(ws, "open");
        ws.emit("echo", "once");
        await nextEvent(ws, "echo");
        await new Promise((resolve) => setTimeout(resolve, 300));
        ws.close();
        return sent;
    }""")
    assert sent == ['{"event":"echo","data":{"message":"once"}}']


# Gaps --------------------------------------------------------------------------------------------


def test_a_jump_in_seq_is_recovered_by_reconnecting_with_the_position(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/crafted/gap", {reconnect: {initial: 10, max: 20}});
        const log = record(ws, "open", "said", "gap");
        await until(() => log.filter(([event]) => event === "said").length === 6);
        ws.close();
        return log;
    }""")
    assert result == [
        ["open"],
        ["said", {"n": 1}, 1],
        ["said", {"n": 2}, 2],
        ["gap", {"stream": "*", "expected": 3, "received": 5, "recovering": True}, None],
        ["open"],
        *[["said", {"n": n}, n] for n in (3, 4, 5, 6)],  # 5 once: not from the socket that skipped
    ]
    first, second = GapServer.urls
    assert "recover" not in first
    _, recover = recover_of(second)
    assert recover == {"epoch": "e1", "streams": {"*": 2}, "tokens": {"*": "token-0"}}


def test_with_reconnect_off_a_gap_is_told_and_accepted(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/crafted/gap", {reconnect: false});
        const log = record(ws, "said", "gap");
        await until(() => log.length === 4);
        const state = ws.state;
        ws.close();
        return {log, state};
    }""")
    assert result["log"][2] == [
        "gap",
        {"stream": "*", "expected": 3, "received": 5, "recovering": False},
        None,
    ]
    assert [entry[2] for entry in result["log"] if entry[0] == "said"] == [1, 2, 5]
    assert result["state"] == "open"
    assert len(GapServer.urls) == 1


# Positions kept, forgotten and bounded -----------------------------------------------------------


def test_left_rooms_are_forgotten_and_1500_rooms_fit_in_4_kb(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/crafted/rooms", {reconnect: {initial: 10, max: 20}});
        const log = record(ws, "open", "resync", "done");
        await until(() => log.some(([event]) => event === "done"), 10000);
        ws.close();
        return log.filter(([event]) => event !== "open");
    }""")
    _, second = RoomsServer.urls
    raw, recover = recover_of(second)
    assert len(raw) <= MAX_RECOVER_LENGTH
    streams, tokens = recover["streams"], recover["tokens"]
    # The rooms in the order they last moved, newest first: room-0000 had a frame after the others.
    newest_first = ["room-0000", *(room for room in reversed(ROOMS[1:]) if room not in LEFT), "*"]
    assert list(streams) == newest_first[: len(streams)]  # only the oldest were dropped
    assert len(streams) >= 30  # as many as 4 KB holds with a 46-character token each
    assert streams["room-0000"] == 11
    assert set(streams.values()) == {10, 11}
    assert tokens == {stream: token(stream) for stream in streams}
    assert not LEFT & set(streams)
    # Back in room-0001, whose position was dropped: nothing was replayed, so the page reloads it.
    assert result == [["resync", {"stream": "room-0001"}, None], ["done", {}, None]]
    dropped = [text for text in tab.warnings() if "stream positions left out" in text]
    assert dropped == [
        f"TornadoWebSocket: {len(newest_first) - len(streams)} stream positions left out of the "
        f"reconnection (over {MAX_RECOVER_LENGTH} characters); they resync."
    ]


def test_a_real_server_takes_the_bounded_request_of_1500_rooms(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/many", {reconnect: false});
        const log = record(ws, "resync", "said");
        let positions = 0;
        ws.on("stream", () => positions++);
        ws.emit("join", {rooms: 1500});
        await nextEvent(ws, "joined_all", 20000);
        await until(() => positions === 1501, 20000);  // "*" and every room
        ws.emit("say", {room: "room-1499", n: 1});
        await until(() => log.length === 1);
        ws.websocket.close();
        await nextEvent(ws, "close");
        ws.connect();
        await nextEvent(ws, "open");
        const url = ws.websocket.url;
        ws.emit("join", {rooms: 1500});  // back in every room: the kept ones are caught up, the others resync
        await nextEvent(ws, "joined_all", 20000);
        await until(() => positions === 3002, 20000);
        ws.emit("say", {room: "room-1499", n: 2});
        await until(() => log.length >= 2 && log[log.length - 1][0] === "said");
        ws.close();
        return {url, log};
    }""")
    raw, recover = recover_of(result["url"])
    assert len(raw) <= MAX_RECOVER_LENGTH
    kept = set(recover["streams"])
    assert "room-1499" in kept
    assert recover["streams"]["room-1499"] == 1
    resynced = [data["stream"] for event, data, _ in result["log"] if event == "resync"]
    # Every room left out of the request is reloaded by the page, and no other.
    assert sorted(resynced) == sorted({"*", *ROOMS} - kept)
    said = [data["n"] for event, data, _ in result["log"] if event == "said"]
    assert said == [1, 2]
