"""The JavaScript client (static/tornado_websockets/client.js and client.mjs) in real headless Chromium.

Layer 1 serves small test pages and the package's static files from a real Tornado server in a thread;
layer 2 (at the end) drives the Django example project served by ``manage.py runtornado``.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import textwrap
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.web
from playwright.sync_api import Browser, expect

from tests.browser import REPOSITORY, STATIC_ROOT, RunTornado, ServerThread, Tab
from tests.client_pages import CLASSIC_PAGE, HELPERS
from tests.requirements import require_binary
from tools import build_js
from tornado_websockets.modules import Module, ProgressBar
from tornado_websockets.websocket import WebSocket
from tornado_websockets.websockethandler import WebSocketHandler

CLIENT_DIR = STATIC_ROOT / "tornado_websockets"

# A loaded two-core machine may take longer than Playwright's default 5 s to load a page and connect.
expect.set_options(timeout=10_000)

MODULE_PAGE = f"""<!doctype html>
<meta charset="utf-8"><title>client.mjs</title>
{HELPERS}
<script type="module">
import TornadoWebSocket, {{Module, ProgressBar}} from "/static/tornado_websockets/client.mjs";
import ProgressBarModule from "/static/tornado_websockets/modules/progressbar.mjs";
window.imported = {{TornadoWebSocket, Module, ProgressBar, ProgressBarModule}};
</script>
"""

# A minimal AMD loader: define(deps, factory) resolves "../client" to the module client.js defined.
AMD_PAGE = f"""<!doctype html>
<meta charset="utf-8"><title>AMD</title>
{HELPERS}
<script>
window.amd = {{}};
window.define = (deps, factory) => {{
  const name = document.currentScript.dataset.name;
  window.amd[name] = factory(...deps.map((dep) => window.amd[dep.replace("../", "")]));
}};
window.define.amd = {{}};
</script>
<script src="/static/tornado_websockets/client.js" data-name="client"></script>
<script src="/static/tornado_websockets/modules/progressbar.js" data-name="progressbar"></script>
"""


def readme_samples(language: str) -> list[str]:
    """The bodies of the ``.. code-block:: <language>`` blocks of the README's "JavaScript client" section."""
    readme = (REPOSITORY / "README.rst").read_text(encoding="utf-8")
    section = re.search(r"^JavaScript client\n-+\n(?P<text>.*?)(?=^\S.*\n[-=]+\n|\Z)", readme, re.M | re.S)
    assert section is not None, 'README.rst has no "JavaScript client" section'
    block = re.compile(rf"^\.\. code-block:: {language}\n\n(?P<body>(?:(?:[ \t]+.*)?\n)+)", re.MULTILINE)
    return [textwrap.dedent(match["body"]) for match in block.finditer(section["text"])]


def readme_pages() -> dict[str, str]:
    """The README's HTML sample as it is, and its JavaScript sample on a page with the elements it names."""
    (html,) = readme_samples("html")
    (javascript,) = readme_samples("javascript")
    progress = (
        '<progress id="bar"></progress> <span id="label"></span>'
        f'<script src="/static/tornado_websockets/client.js"></script><script>{javascript}</script>'
    )
    return {"readme_html": HELPERS + html, "readme_javascript": HELPERS + progress}


PAGES = {"classic": CLASSIC_PAGE, "module": MODULE_PAGE, "amd": AMD_PAGE, **readme_pages()}


class PageHandler(tornado.web.RequestHandler):
    def get(self, name: str) -> None:
        if name not in PAGES:
            raise tornado.web.HTTPError(404)
        self.write(PAGES[name])


class Greeter(Module):
    """A server module whose events are module_greeter_<event>."""

    def __init__(self) -> None:
        super().__init__("greeter_")

    def initialize(self) -> None:
        @self.on
        async def hello(socket: WebSocketHandler, data: dict[str, Any]) -> None:
            socket.emit(self.name + "hello", {"text": f"hello {data['name']}"})


def register_websockets() -> None:
    """The server side of the tests: echo, errors, replies, a progress bar, a module, recovery."""
    echo = WebSocket("/echo")

    @echo.on(name="echo")
    async def echo_back(socket: WebSocketHandler, data: dict[str, Any]) -> None:
        socket.emit("echo", data)

    @echo.on
    async def boom() -> None:
        raise RuntimeError("not for the client's eyes")

    @echo.on
    async def add(data: dict[str, Any]) -> int:
        return int(data["a"]) + int(data["b"])

    @echo.on
    async def slow() -> str:
        await asyncio.sleep(0.5)
        return "late"

    echo.bind(Greeter())

    progress = WebSocket("/progress")
    bar = ProgressBar("demo", max=10)
    progress.bind(bar)

    @progress.on
    async def start() -> None:
        bar.reset()
        for step in range(1, 11):
            await asyncio.sleep(0.005)
            bar.tick(label=f"step {step} of 10")

    chat = WebSocket("/chat")

    @chat.on
    async def message(data: dict[str, Any]) -> None:
        chat.emit("message", {"text": str(data.get("text", ""))})

    flaky = WebSocket("/flaky")

    @flaky.on
    async def open(socket: WebSocketHandler) -> None:
        socket.close(1013, "Try again later")  # accepts, then drops: an overloaded or restarting server

    register_feed("/feed", recover_size=100)
    register_feed("/small", recover_size=2)


def register_feed(path: str, recover_size: int) -> None:
    """A path with recovery on, whose ``say`` event is sent to every client as ``said``."""
    feed = WebSocket(path, recover=60, recover_size=recover_size)

    @feed.on
    async def say(data: dict[str, Any]) -> None:
        feed.emit("said", data)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    register_websockets()
    thread = ServerThread(
        [
            (r"/page/(\w+)", PageHandler),
            (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(STATIC_ROOT)}),
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


# Connecting, sending, receiving ------------------------------------------------------------------


def test_open_then_close(tab: Tab, server: ServerThread) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo");
        const log = record(ws, "open", "close");
        const before = ws.state;
        await nextEvent(ws, "open");
        const open = {state: ws.state, connected: ws.connected, url: ws.websocket.url};
        ws.close();
        await nextEvent(ws, "close");
        return {before, open, log, after: ws.state, connected: ws.connected};
    }""")
    assert result == {
        "before": "connecting",
        "open": {"state": "open", "connected": True, "url": f"ws://127.0.0.1:{server.port}/ws/echo"},
        "log": [["open"], ["close", 1000]],
        "after": "closed",
        "connected": False,
    }


def test_url_defaults_to_the_page_and_options_override_it(tab: Tab, server: ServerThread) -> None:
    urls = tab.page.evaluate("""() => [
        new TornadoWebSocket("chat", {auto_connect: false}).url,
        new TornadoWebSocket(" /chat/lobby ", {auto_connect: false}).url,
        new TornadoWebSocket("/chat", {auto_connect: false, host: "example.com", port: 9000, secure: true})
            .url,
        new TornadoWebSocket("/chat", {auto_connect: false, host: "::1", port: 8000}).url,
    ]""")
    assert urls == [
        f"ws://127.0.0.1:{server.port}/ws/chat",
        f"ws://127.0.0.1:{server.port}/ws/chat/lobby",
        "wss://example.com:9000/ws/chat",
        "ws://[::1]:8000/ws/chat",
    ]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ("42", "TypeError: TornadoWebSocket: path should be a string"),
        ('"/x", {outbox: -1}', "RangeError: TornadoWebSocket: outbox should be a whole number"),
        ('"/x", {reconnect: {initial: 10, max: 5}}', "RangeError: TornadoWebSocket: reconnect needs"),
        ('"/x", {reconnect: "often"}', "TypeError: TornadoWebSocket: reconnect should be false"),
        ('"/x", {refusedAfter: 0}', "RangeError: TornadoWebSocket: refusedAfter should be a whole number"),
        ('"/x", {liveness: 5}', "TypeError: TornadoWebSocket: liveness should be false, true or"),
        ('"/x", {liveness: {idle: 0}}', "RangeError: TornadoWebSocket: liveness needs idle > 0"),
    ],
)
def test_bad_arguments_throw_at_once(tab: Tab, arguments: str, error: str) -> None:
    thrown = tab.page.evaluate(f"""() => {{
        try {{ new TornadoWebSocket({arguments}); return null; }} catch (e) {{ return String(e); }}
    }}""")
    assert thrown is not None
    assert thrown.startswith(error)


def test_emit_reaches_every_listener(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo");
        const first = [], second = [];
        ws.on("echo", (data) => first.push(data.message));
        ws.on("echo", (data, frame) => second.push([frame.event, data.message]));
        ws.emit("echo", {message: "hi"});
        await until(() => second.length === 1);
        ws.close();
        return {first, second};
    }""")
    assert result == {"first": ["hi"], "second": [["echo", "hi"]]}


def test_off_and_once(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo");
        const got = {kept: [], removed: [], once: [], all: []};
        const removed = (data) => got.removed.push(data.n);
        ws.on("echo", (data) => got.kept.push(data.n));
        ws.on("echo", removed);
        ws.once("echo", (data) => got.once.push(data.n));
        ws.emit("echo", {n: 1});
        await until(() => got.kept.length === 1);
        ws.off("echo", removed);
        ws.emit("echo", {n: 2});
        await until(() => got.kept.length === 2);
        ws.off("echo");
        ws.on("echo", (data) => got.all.push(data.n));
        ws.emit("echo", {n: 3});
        await until(() => got.all.length === 1);
        ws.close();
        return got;
    }""")
    assert result == {"kept": [1, 2], "removed": [1], "once": [1], "all": [3]}


def test_data_that_is_not_an_object_is_wrapped(tab: Tab) -> None:
    received = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo");
        const got = [];
        ws.on("echo", (data) => got.push(data));
        ws.emit("echo", "hi").emit("echo").emit("echo", 42).emit("echo", null).emit("echo", [1, 2]);
        ws.emit("echo", {message: "object", n: 1});
        await until(() => got.length === 6);
        ws.close();
        return got;
    }""")
    assert received == [
        {"message": "hi"},
        {},
        {"message": 42},
        {},
        {"message": [1, 2]},
        {"message": "object", "n": 1},
    ]


def test_a_throwing_listener_does_not_stop_the_others(tab: Tab) -> None:
    received = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo");
        const got = [];
        ws.on("echo", () => { throw new Error("listener bug"); });
        ws.on("echo", (data) => got.push(data.message));
        ws.emit("echo", "still delivered");
        await until(() => got.length === 1);
        ws.close();
        return got;
    }""")
    assert received == ["still delivered"]
    assert len(tab.errors) == 1
    assert "listener bug" in tab.errors[0]  # reported as uncaught, not swallowed
    tab.errors.clear()


# The outbox --------------------------------------------------------------------------------------


def test_emits_before_open_are_sent_in_order(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo", {auto_connect: false});
        const got = [];
        ws.on("echo", (data) => got.push(data.n));
        ws.on("open", () => ws.emit("echo", {n: "sent by open"}));
        for (let n = 0; n < 5; n++) ws.emit("echo", {n});
        const queued = ws.queued;
        const state = ws.state;
        ws.connect();
        await until(() => got.length === 6);
        ws.close();
        return {queued, state, got, after: ws.queued};
    }""")
    assert result == {"queued": 5, "state": "closed", "got": [0, 1, 2, 3, 4, "sent by open"], "after": 0}


def test_the_outbox_drops_the_oldest_with_a_warning(tab: Tab) -> None:
    got = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo", {outbox: 3});
        const got = [];
        ws.on("echo", (data) => got.push(data.n));
        for (let n = 0; n < 5; n++) ws.emit("echo", {n});  // before the socket opens
        await until(() => got.length === 3);
        ws.close();
        return got;
    }""")
    assert got == [2, 3, 4]
    dropped = [text for text in tab.warnings() if "outbox full (3 frames)" in text]
    assert len(dropped) == 2
    assert '"n":0' in dropped[0]
    assert '"n":1' in dropped[1]


# Reconnection ------------------------------------------------------------------------------------


def test_reconnects_after_the_server_restarts_on_the_same_port(tab: Tab, server: ServerThread) -> None:
    tab.page.evaluate("""async () => {
        window.ws = new TornadoWebSocket("/echo", {reconnect: {initial: 20, max: 100}});
        window.log = record(ws, "open", "close", "reconnecting");
        await nextEvent(ws, "open");
    }""")
    server.stop()
    # While the server is down, every attempt fails and the next one is scheduled.
    tab.page.evaluate(
        "() => until(() => log.filter(([e, d]) => e === 'reconnecting' && d.attempt >= 3).length)"
    )
    assert tab.page.evaluate("() => ws.connected") is False
    server.start()
    result = tab.page.evaluate("""async () => {
        await until(() => log.filter(([e]) => e === "open").length === 2);
        ws.emit("echo", "after the restart");
        const echoed = await nextEvent(ws, "echo");
        ws.close();
        return {echoed, first: log.slice(0, 3)};
    }""")
    assert result["echoed"] == {"message": "after the restart"}
    opened, closed, retry = result["first"]
    assert opened == ["open"]
    assert closed == ["close", 1001]  # the server went away
    assert retry[0] == "reconnecting"
    assert retry[1]["attempt"] == 1


def test_backoff_grows_exponentially_up_to_max_with_jitter(tab: Tab, server: ServerThread) -> None:
    server.stop()  # every attempt fails: only the schedule is left to see
    delays = tab.page.evaluate("""async () => {
        const exact = new TornadoWebSocket("/echo",
            {reconnect: {initial: 10, factor: 2, max: 40, jitter: 0}});
        const jittered = new TornadoWebSocket("/echo",
            {reconnect: {initial: 40, factor: 3, max: 400, jitter: 0.5}});
        const delays = {exact: [], jittered: []};
        exact.on("reconnecting", (retry) => delays.exact.push(retry.delay));
        jittered.on("reconnecting", (retry) => delays.jittered.push(retry.delay));
        await until(() => delays.exact.length >= 5 && delays.jittered.length >= 3, 10000);
        exact.close();
        jittered.close();
        return delays;
    }""")
    assert delays["exact"][:5] == [10, 20, 40, 40, 40]
    for delay, ceiling in zip(delays["jittered"], [40, 120, 360], strict=False):
        assert ceiling / 2 <= delay <= ceiling


def test_a_server_that_drops_every_connection_at_once_sees_the_backoff_grow(
    tab: Tab, server: ServerThread
) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/flaky",
            {reconnect: {initial: 10, factor: 2, max: 80, jitter: 0, stable: 2000}});
        const log = record(ws, "open", "reconnecting");
        await until(() => log.filter(([name]) => name === "reconnecting").length >= 5, 10000);
        ws.close();
        return log;
    }""")
    opened = [entry for entry in result if entry[0] == "open"]
    delays = [entry[1]["delay"] for entry in result if entry[0] == "reconnecting"]
    assert len(opened) >= 5  # every attempt got in, and was dropped before it proved stable
    assert delays[:5] == [10, 20, 40, 80, 80]


def test_reconnect_false_never_reconnects(tab: Tab, server: ServerThread) -> None:
    tab.page.evaluate("""async () => {
        window.ws = new TornadoWebSocket("/echo", {reconnect: false});
        window.log = record(ws, "open", "close", "reconnecting");
        await nextEvent(ws, "open");
    }""")
    server.stop()
    assert tab.page.evaluate(
        "async () => { await until(() => log.length === 2); return [log, ws.state]; }"
    ) == [
        [["open"], ["close", 1001]],
        "closed",  # no socket and no timer: nothing can open it again but connect()
    ]


def test_close_stops_reconnecting_for_good(tab: Tab, server: ServerThread) -> None:
    tab.page.evaluate("""async () => {
        const options = {reconnect: {initial: 20, max: 50}};
        window.early = new TornadoWebSocket("/echo", options);   // closed before the restart
        window.waiting = new TornadoWebSocket("/echo", options);  // closed while waiting to retry
        window.control = new TornadoWebSocket("/echo", options);  // left alone: it comes back
        window.logs = {early: record(early, "open", "reconnecting"), waiting: record(waiting, "open"),
                       control: record(control, "open")};
        await Promise.all([early, waiting, control].map((ws) => nextEvent(ws, "open")));
        early.close();
        await nextEvent(early, "close");
    }""")
    server.stop()
    tab.page.evaluate("""async () => {
        await until(() => waiting.state === "waiting");
        waiting.close();
    }""")
    server.start()
    result = tab.page.evaluate("""async () => {
        await until(() => logs.control.length === 2);
        control.emit("echo", "back");
        await nextEvent(control, "echo");
        const states = [early.state, waiting.state, control.state];
        control.close();
        return {states, logs};
    }""")
    assert result["states"] == ["closed", "closed", "open"]
    assert result["logs"] == {"early": [["open"]], "waiting": [["open"]], "control": [["open"], ["open"]]}


# What the server says back -----------------------------------------------------------------------


def test_server_warning_and_server_error_arrive_as_events(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo");
        const socketErrors = record(ws, "error");  // the socket's own errors only: none here
        const warning = nextEvent(ws, "warning"), error = nextEvent(ws, "server_error");
        ws.emit("nope", {});
        ws.emit("boom");
        const result = {warning: await warning, error: await error};
        ws.emit("echo", "still open");
        result.echo = await nextEvent(ws, "echo");
        ws.close();
        result.socketErrors = socketErrors;
        return result;
    }""")
    assert result == {
        "warning": {"message": 'Event "nope" is not bound on "/echo".', "event": "nope"},
        "error": {"message": 'The event "boom" failed on the server.', "event": "boom"},
        "echo": {"message": "still open"},
        "socketErrors": [],
    }


def test_error_is_the_socket_error_event_as_in_the_original_client(tab: Tab, server: ServerThread) -> None:
    # The original client (0.2) set on("error", f) as websocket.onerror: f gets the browser's Event.
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo", {port: 1, reconnect: false});  // nobody listens there
        const [error, closed] = await Promise.all([nextEvent(ws, "error"), nextEvent(ws, "close")]);
        return {isEvent: error instanceof Event, type: error.type, code: closed.code};
    }""")
    assert result == {"isEvent": True, "type": "error", "code": 1006}


def test_an_unheard_warning_is_logged_to_the_console(tab: Tab) -> None:
    with tab.page.expect_console_message(lambda message: message.type == "warning") as logged:
        tab.page.evaluate("""async () => {
            const ws = new TornadoWebSocket("/echo");
            ws.emit("nope").emit("echo");
            await nextEvent(ws, "echo");  // the server answers in order: the warning came first
            ws.close();
        }""")
    assert logged.value.text.startswith('TornadoWebSocket: the server sent "warning" on /echo:')


def test_request_resolves_with_the_reply_or_rejects_with_the_error(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo");
        const sum = await ws.request("add", {a: 2, b: 3});    // queued until open, like emit
        const failure = await ws.request("boom").catch((e) => [e.message, e.event]);
        const unknown = await ws.request("nope").catch((e) => e.message);
        ws.close();
        return {sum, failure, unknown};
    }""")
    assert result == {
        "sum": 5,
        "failure": ['The event "boom" failed on the server.', "boom"],
        "unknown": 'Event "nope" is not bound on "/echo".',
    }


def test_a_request_without_reply_rejects_on_timeout_or_when_the_connection_drops(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo", {reconnect: false});
        await nextEvent(ws, "open");
        const timeout = await ws.request("slow", {}, {timeout: 50}).catch((e) => e.message);
        const pending = ws.request("slow").catch((e) => e.message);
        ws.websocket.close();  // a drop: the reply (in 500 ms) can no longer arrive
        const dropped = await pending;
        return {timeout, dropped};
    }""")
    assert result == {
        "timeout": 'TornadoWebSocket: no reply to "slow" within 50 ms.',
        "dropped": "TornadoWebSocket: the connection closed before the reply.",
    }


# Modules -----------------------------------------------------------------------------------------


def test_module_events_are_namespaced(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/echo");
        const greeter = new TornadoWebSocket.Module("greeter_");
        const reply = new Promise((resolve) => greeter.on("hello", resolve));  // before bind: kept
        const bound = ws.bind(greeter);
        greeter.emit("hello", {name: "ann"});
        const result = {name: greeter.name, same: bound === greeter, reply: await reply};
        ws.close();
        return result;
    }""")
    assert result == {"name": "module_greeter_", "same": True, "reply": {"text": "hello ann"}}


def test_progressbar_reaches_100_percent(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const ws = new TornadoWebSocket("/progress");
        const bar = new TornadoWebSocket.ProgressBar("demo", {progress: "#progress", label: "#label"});
        const seen = {init: [], update: 0, done: 0};
        bar.on("init", (data) => seen.init.push(data));
        bar.on("update", () => seen.update++);
        bar.on("done", () => { seen.done++; document.getElementById("status").textContent = "done"; });
        ws.bind(bar);
        await nextEvent(ws, "open");
        ws.emit("start");
        await until(() => bar.done);
        const progress = document.getElementById("progress");
        const label = document.getElementById("label").textContent;
        return {seen, value: progress.value, max: progress.max, label, percent: bar.percent, name: bar.name};
    }""")
    assert result == {
        "seen": {
            "init": [
                {"indeterminate": False, "min": 0, "max": 10, "current": 0},  # on open
                {"indeterminate": False, "min": 0, "max": 10, "current": 0},  # reset() by start
            ],
            "update": 10,
            "done": 1,
        },
        "value": 10,
        "max": 10,
        "label": "step 10 of 10",
        "percent": 100,
        "name": "module_progressbar_demo_",
    }
    tab.screenshot("client-js-progressbar")


def test_the_progressbar_module_file_is_the_same_class(tab: Tab) -> None:
    # modules/progressbar.js, loaded after client.js as with the original library, adds nothing new.
    assert tab.page.evaluate("() => typeof TornadoWebSocket.ProgressBar === 'function'")
    assert tab.page.evaluate("() => Object.keys(window).includes('ProgressBarModule')") is False


# Recovery of missed frames -----------------------------------------------------------------------


def test_a_dropped_client_gets_what_it_missed_in_order(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const listener = new TornadoWebSocket("/feed", {reconnect: false});
        const talker = new TornadoWebSocket("/feed");
        const heard = record(listener, "said"), told = record(talker, "said");
        await Promise.all([nextEvent(listener, "stream"), nextEvent(talker, "open")]);
        talker.emit("say", {n: 0});
        await until(() => heard.length === 1);
        listener.websocket.close();  // a network drop, not close(): the client means to come back
        await nextEvent(listener, "close");
        for (let n = 1; n <= 3; n++) talker.emit("say", {n});
        await until(() => told.length === 4);
        listener.connect();
        await until(() => heard.length === 4);
        const url = listener.websocket.url;
        talker.emit("say", {n: 4});
        await until(() => heard.length === 5);
        listener.close(); talker.close();
        return {heard: heard.map(([, data, seq]) => [data.n, seq]), url};
    }""")
    assert result["heard"] == [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]  # no gap, no duplicate
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(result["url"]).query)
    assert json.loads(query["recover"][0])["streams"] == {"*": 1}  # where it stood when it dropped


def test_a_client_that_drops_again_and_again_recovers_each_time_with_its_newest_token(tab: Tab) -> None:
    """A token recovers once (issue 28 §6): each reconnection must bring the one handed last."""
    result = tab.page.evaluate("""async () => {
        const listener = new TornadoWebSocket("/feed", {reconnect: false});
        const talker = new TornadoWebSocket("/feed");
        const heard = record(listener, "said"), told = record(talker, "said");
        const resyncs = record(listener, "resync");
        await Promise.all([nextEvent(listener, "stream"), nextEvent(talker, "open")]);
        const urls = [];
        for (let drop = 0; drop < 3; drop++) {
            listener.websocket.close();
            await nextEvent(listener, "close");
            talker.emit("say", {n: drop});
            await until(() => told.length === drop + 1);
            const positioned = nextEvent(listener, "stream");
            listener.connect();
            urls.push(listener.websocket.url);
            await until(() => heard.length === drop + 1);
            await positioned;
        }
        listener.close(); talker.close();
        return {heard: heard.map(([, data]) => data.n), resyncs: resyncs.length, urls};
    }""")
    assert result == {"heard": [0, 1, 2], "resyncs": 0, "urls": result["urls"]}
    tokens = [
        json.loads(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["recover"][0])["tokens"]["*"]
        for url in result["urls"]
    ]
    assert len(set(tokens)) == 3  # a fresh token each time


def test_a_client_too_far_behind_gets_resync(tab: Tab) -> None:
    result = tab.page.evaluate("""async () => {
        const listener = new TornadoWebSocket("/small", {reconnect: false});
        const talker = new TornadoWebSocket("/small");
        const told = record(talker, "said");
        await Promise.all([nextEvent(listener, "stream"), nextEvent(talker, "open")]);
        listener.websocket.close();
        await nextEvent(listener, "close");
        for (let n = 0; n < 5; n++) talker.emit("say", {n});
        await until(() => told.length === 5);
        const resync = nextEvent(listener, "resync");
        listener.connect();
        const result = await resync;
        listener.close(); talker.close();
        return result;
    }""")
    assert result == {"stream": "*"}


# The builds: classic script, ES module, AMD, CommonJS, TypeScript ---------------------------------


def test_client_js_is_generated_from_client_mjs() -> None:
    module = (CLIENT_DIR / "client.mjs").read_text(encoding="utf-8")
    assert (CLIENT_DIR / "client.js").read_text(encoding="utf-8") == build_js.build(module), "run make js"


def test_build_refuses_a_module_without_its_exports_marker() -> None:
    with pytest.raises(ValueError, match="lacks the line"):
        build_js.build("class TornadoWebSocket {}\nexport default TornadoWebSocket;\n")


def test_es_module_build(browser: Browser, server: ServerThread) -> None:
    tab = Tab.open(browser, server.url("/page/module"))
    try:
        tab.page.wait_for_function("() => window.imported")
        result = tab.page.evaluate("""async () => {
            const {TornadoWebSocket, Module, ProgressBar, ProgressBarModule} = window.imported;
            const ws = new TornadoWebSocket("/echo");
            ws.emit("echo", "from the module");
            const echoed = await nextEvent(ws, "echo");
            ws.close();
            return {echoed, global: typeof window.TornadoWebSocket,
                    module: Module === TornadoWebSocket.Module,
                    bar: ProgressBar === TornadoWebSocket.ProgressBar && ProgressBarModule === ProgressBar};
        }""")
    finally:
        tab.close()
    assert result == {
        "echoed": {"message": "from the module"},
        "global": "undefined",
        "module": True,
        "bar": True,
    }
    assert tab.errors == []


def test_amd_loading(browser: Browser, server: ServerThread) -> None:
    tab = Tab.open(browser, server.url("/page/amd"))
    try:
        result = tab.page.evaluate("""async () => {
            const TornadoWebSocket = amd.client;
            const ws = new TornadoWebSocket("/echo");
            ws.emit("echo", "through AMD");
            const echoed = await nextEvent(ws, "echo");
            ws.close();
            const bar = amd.progressbar === TornadoWebSocket.ProgressBar;
            return {echoed, global: typeof window.TornadoWebSocket, bar};
        }""")
    finally:
        tab.close()
    assert result == {"echoed": {"message": "through AMD"}, "global": "undefined", "bar": True}
    assert tab.errors == []


NODE_REQUIRE = """
const TornadoWebSocket = require(process.argv[1] + "/client.js");
const ProgressBar = require(process.argv[1] + "/modules/progressbar.js");
const ws = new TornadoWebSocket("chat", {auto_connect: false});
ws.emit("say", "queued");
console.log(JSON.stringify({
  name: TornadoWebSocket.name, url: ws.url, queued: ws.queued, state: ws.state,
  bar: ProgressBar === TornadoWebSocket.ProgressBar, module: new TornadoWebSocket.Module("m").name,
}));
"""

NODE_ECHO = """
const TornadoWebSocket = require(process.argv[1] + "/client.js");
const port = Number(process.argv[2]);
const ws = new TornadoWebSocket("/echo", {host: "127.0.0.1", port, reconnect: false});
ws.on("echo", (data) => {
  console.log(JSON.stringify({data, url: ws.url}));
  ws.close();
});
ws.emit("echo", "from node");
"""


def node(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run Node.js; fails the test if it fails."""
    executable = require_binary("node", "apt-get install nodejs")
    done = subprocess.run([executable, *arguments], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done


def test_commonjs_require_in_node() -> None:
    done = node("-e", NODE_REQUIRE, str(CLIENT_DIR))
    assert json.loads(done.stdout) == {
        "name": "TornadoWebSocket",
        "url": "ws://localhost:8000/ws/chat",  # no page to take the host from: the original defaults
        "queued": 1,
        "state": "closed",
        "bar": True,
        "module": "module_m",
    }


def test_commonjs_in_node_talks_to_the_server(server: ServerThread) -> None:
    # Node 22 has a global WebSocket, Node 20 behind a flag; older ones have none to connect with.
    probe = "process.exit(typeof WebSocket === 'function' ? 0 : 1)"
    flags = [f for f in ([], ["--experimental-websocket"]) if _node_accepts(f, probe)]
    if not flags:
        pytest.skip("this Node.js has no WebSocket (Node 20 or newer has one)")
    done = node(*flags[0], "-e", NODE_ECHO, str(CLIENT_DIR), str(server.port))
    assert json.loads(done.stdout) == {
        "data": {"message": "from node"},
        "url": f"ws://127.0.0.1:{server.port}/ws/echo",
    }


def _node_accepts(flags: list[str], script: str) -> bool:
    executable = require_binary("node", "apt-get install nodejs")
    done = subprocess.run([executable, *flags, "-e", script], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


def test_typescript_declarations_cover_the_public_api(tab: Tab) -> None:
    members = tab.page.evaluate("""() => {
        const names = (cls) => Object.getOwnPropertyNames(cls.prototype).filter((n) => n !== "constructor");
        const instance = (object) => Object.keys(object);
        const ws = new TornadoWebSocket("/echo", {auto_connect: false});
        const bar = new TornadoWebSocket.ProgressBar("x");
        return [...names(TornadoWebSocket), ...names(TornadoWebSocket.Module),
                ...names(TornadoWebSocket.ProgressBar), ...instance(ws), ...instance(bar),
                ...instance(ws.options),
                ...Object.keys(TornadoWebSocket).filter((n) => n !== "prototype")];
    }""")
    declarations = (CLIENT_DIR / "client.d.ts").read_text(encoding="utf-8")
    declared = set(re.findall(r"^\s*(?:static\s+)?(?:readonly\s+)?(\w+)[?<(:]", declarations, re.MULTILINE))
    declared |= set(re.findall(r"^\s*class (\w+)", declarations, re.MULTILINE))
    assert sorted(set(members) - declared) == []


def test_typescript_declarations_compile(tmp_path: Path) -> None:
    tsc = require_binary("tsc", "apt-get install node-typescript")
    (tmp_path / "use.mts").write_text(TYPESCRIPT_USE, encoding="utf-8")
    (tmp_path / "static").symlink_to(CLIENT_DIR)
    command = [tsc, "--noEmit", "--strict", "--module", "nodenext", "--lib", "es2022,dom", "use.mts"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout


TYPESCRIPT_USE = """
import TornadoWebSocket, { ProgressBar, Module } from "./static/client.mjs";
const ws = new TornadoWebSocket("/echo", { reconnect: { initial: 100 }, outbox: 5 });
ws.on("echo", (data: { message: string }, frame) => console.log(data.message, frame.seq));
ws.on("error", (e: Event) => console.log(e.type));
ws.on("server_error", ({ message, event }) => console.log(message, event));
ws.on("ended", ({ code, reason, final }) => console.log(code, reason, final));
ws.on("unreachable", ({ attempts }) => console.log(attempts + 1));
ws.on("gap", ({ stream, expected, received, recovering }) => console.log(stream, received, expected));
ws.on("stream", ({ stream, seq, token, left }) => console.log(stream, seq, token, left));
new TornadoWebSocket("/x", { refusedAfter: 5, liveness: { idle: 1000 } });
new TornadoWebSocket("/x", { liveness: false, binary: false });
const bytes: TornadoWebSocket.Bytes = new Uint8Array(2);
ws.emit("upload", { file: bytes, blob: new Blob(["x"]), view: new DataView(new ArrayBuffer(1)) });
ws.on("thumb", (data: { png: Uint8Array }) => console.log(data.png.byteLength, ws.binary));
ws.on("reconnecting", ({ attempt, delay }) => console.log(attempt + delay));
const bar: ProgressBar = ws.bind(new ProgressBar("demo", { progress: "#p", label: null }));
bar.on("init", (d) => console.log(d.indeterminate)).on("done", () => console.log(bar.percent));
ws.bind(new Module("chat"));
const sum: Promise<number> = ws.request<number>("add", { a: 1 }, { timeout: 5 });
const state: TornadoWebSocket.State = ws.state;
console.log(sum, state, ws.emit("x", "hi").close().connected);
// @ts-expect-error the options are typed
new TornadoWebSocket("/x", { outbox: "many" });
"""


# The README's samples, copied as they are ---------------------------------------------------------


def test_readme_html_sample_chats(browser: Browser, server: ServerThread) -> None:
    tabs = [Tab.open(browser, server.url("/page/readme_html")) for _ in range(2)]
    try:
        for tab in tabs:
            tab.page.wait_for_function("() => chat.connected")
        tabs[0].page.fill("#text", "hello from the README")
        tabs[0].page.press("#text", "Enter")
        for tab in tabs:
            tab.page.wait_for_function("() => document.querySelectorAll('#log li').length === 1")
            assert tab.page.inner_text("#log li") == "hello from the README"
    finally:
        for tab in tabs:
            tab.close()
    assert [tab.errors for tab in tabs] == [[], []]


def test_readme_javascript_sample_shows_progress(browser: Browser, server: ServerThread) -> None:
    tab = Tab.open(browser, server.url("/page/readme_javascript"))
    try:
        tab.page.wait_for_function("() => ws.connected")
        done = tab.page.evaluate("""async () => {
            const done = nextEvent(bar, "done");
            ws.emit("start");  // the test server's task: ten ticks
            await done;
            const progress = document.getElementById("bar");
            return [progress.value, progress.max, document.getElementById("label").textContent];
        }""")
    finally:
        tab.close()
    assert done == [10, 10, "step 10 of 10"]
    assert tab.errors == []


# Layer 2: the Django example project, served by manage.py runtornado ------------------------------

#: Milliseconds a page may take to come back after a restart: the backoff's waits add up meanwhile.
RECONNECT_TIMEOUT = 30_000


def example_page(browser: Browser, example: RunTornado, path: str, user: str | None = None) -> Tab:
    """A fresh browser context, logged in as ``user`` if given, on ``path`` once its socket is connected."""
    tab = Tab.open(browser)
    page = tab.page
    if user is not None:
        page.goto(example.url("/accounts/login/"))
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", user)
        page.press("input[name=password]", "Enter")
        page.wait_for_url(example.url("/"))
    page.goto(example.url(path))
    expect(page.locator("#status")).to_have_text("connected")
    return tab


def send(tab: Tab, field: str, text: str) -> None:
    """Type ``text`` into the form's input and press Enter, as a user does."""
    tab.page.fill(field, text)
    tab.page.press(field, "Enter")


def test_example_home_and_login_pages(browser: Browser, example: RunTornado) -> None:
    tab = Tab.open(browser, example.url("/"))
    try:
        links = tab.page.locator("main ul").first.locator("a")
        expect(links).to_have_text(["Echo", "Chat", "Progress"])
        tab.screenshot("example-home")
        links.filter(has_text="Chat").click()  # anonymous: the chat sends the visitor to log in first
        tab.page.wait_for_url(example.url("/accounts/login/?next=/chat/"))
        expect(tab.page.locator("main")).to_contain_text("demo/demo")
        tab.screenshot("example-login")
        tab.page.fill("input[name=username]", "alice")
        tab.page.fill("input[name=password]", "alice")
        tab.page.press("input[name=password]", "Enter")
        tab.page.wait_for_url(example.url("/chat/"))
        expect(tab.page.locator("#status")).to_have_text("connected")
    finally:
        tab.close()
    assert tab.errors == []


def test_example_echo_page(browser: Browser, example: RunTornado) -> None:
    tab = example_page(browser, example, "/echo/")
    try:
        send(tab, "#echo-input", "hello, echo")
        send(tab, "#echo-input", "and again")
        expect(tab.page.locator("#echo-log li")).to_have_text(["hello, echo", "and again"])
        tab.screenshot("example-echo")
    finally:
        tab.close()
    assert tab.errors == []


def test_example_two_users_chat(browser: Browser, example: RunTornado) -> None:
    demo = example_page(browser, example, "/chat/", user="demo")
    alice = example_page(browser, example, "/chat/", user="alice")
    try:
        send(demo, "#chat-input", "hi alice")
        expect(alice.page.locator("#chat-log li")).to_have_text(["demo: hi alice"])
        send(alice, "#chat-input", "hello demo")
        conversation = ["demo: hi alice", "alice: hello demo"]
        for tab in (demo, alice):
            expect(tab.page.locator("#chat-log li")).to_have_text(conversation)
        demo.screenshot("example-chat-demo")
        alice.screenshot("example-chat-alice")
    finally:
        demo.close()
        alice.close()
    assert demo.errors == alice.errors == []


def test_example_progress_reaches_100_percent(browser: Browser, example: RunTornado) -> None:
    tab = example_page(browser, example, "/progress/")
    try:
        tab.page.click("#progress-start")
        expect(tab.page.locator("#progress-done")).to_have_text("done", timeout=30_000)
        value, maximum = tab.page.evaluate("() => [progress.value, progress.max]")
        assert value == maximum > 0
        expect(tab.page.locator("#progress-label")).to_have_text("100%")
        tab.screenshot("example-progress")
    finally:
        tab.close()
    assert tab.errors == []


def test_example_emits_queued_while_disconnected_arrive_in_order(
    browser: Browser, example: RunTornado
) -> None:
    tab = example_page(browser, example, "/echo/")
    try:
        example.stop()
        expect(tab.page.locator("#status")).to_have_text("disconnected")
        for text in ("first", "second", "third"):
            send(tab, "#echo-input", text)
        assert tab.page.evaluate("() => ws.queued") == 3  # waiting in the outbox, nothing lost
        example.start()
        expect(tab.page.locator("#status")).to_have_text("connected", timeout=RECONNECT_TIMEOUT)
        expect(tab.page.locator("#echo-log li")).to_have_text(["first", "second", "third"])
    finally:
        tab.close()
    assert tab.errors == []


def test_example_page_reconnects_by_itself_after_a_restart(browser: Browser, example: RunTornado) -> None:
    tab = example_page(browser, example, "/chat/", user="demo")
    try:
        example.stop()
        expect(tab.page.locator("#status")).to_have_text("disconnected")
        example.start()
        expect(tab.page.locator("#status")).to_have_text("connected", timeout=RECONNECT_TIMEOUT)
        send(tab, "#chat-input", "still here")  # the same session, so the same user, after the restart
        expect(tab.page.locator("#chat-log li")).to_have_text(["demo: still here"])
        # A restarted server kept nothing to replay: the page was told (resync) and says so.
        expect(tab.page.locator("#chat-note")).to_be_visible()
        tab.screenshot("example-chat-after-restart")
    finally:
        tab.close()
    assert tab.errors == []
