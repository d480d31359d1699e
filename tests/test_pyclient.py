"""The Python client against a real server process: the JavaScript client's resilience scenarios and more.

Final closes ("ended"), a refusing guard ("unreachable"), a server gone silent behind a frozen TCP proxy
(liveness), a jump in a stream's numbers (gap recovery), 1,500 rooms in a bounded ``?recover=``, as in
tests/test_client_js_resilience.py; then requests, the outbox, iteration, typed listeners, headers, and
recovery of frames missed during a drop. The server: ``python -m tests.pyclient_app`` (pyclient_app.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.crafted_servers import LEFT, ROOMS, token
from tests.freezable_proxy import FreezableProxy
from tests.servers import ROOT, free_port
from tornado_websockets.client import (
    Client,
    ClientUsageError,
    ConnectionEnded,
    ConnectionLost,
    ConnectionUnreachable,
    Liveness,
    Reconnect,
    RequestDropped,
    RequestFailed,
    RequestTimeout,
    connect,
    connect_sync,
)
from tornado_websockets.client.options import MAX_RECOVER_LENGTH

FAST = Reconnect(initial=0.01, max=0.02)


class Server:
    """``python -m tests.pyclient_app PORT``, and its /control endpoint."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.pyclient_app", str(self.port)],
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.control()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws{path}"

    def control(self, reset: bool = False, refuse: bool | None = None) -> dict[str, Any]:
        """What the server saw; ``reset`` forgets it, ``refuse`` switches the guard."""
        base = f"http://127.0.0.1:{self.port}/control"
        if refuse is not None:
            body = urllib.parse.urlencode({"refuse": "1" if refuse else "0"}).encode()
            urllib.request.urlopen(base, data=body, timeout=5).close()
        with urllib.request.urlopen(base + ("?reset=1" if reset else ""), timeout=5) as response:
            seen: dict[str, Any] = json.loads(response.read())
        return seen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def running_server() -> Iterator[Server]:
    server = Server()
    yield server
    server.stop()


@pytest.fixture
def server(running_server: Server) -> Server:
    running_server.control(reset=True)
    return running_server


def record(client: Client, *events: str) -> list[list[Any]]:
    """The ``events`` the client raises: ``[event]`` (open), ``[event, code]`` (close), ``[event, data]``."""
    log: list[list[Any]] = []

    def listener(event: str) -> Callable[[Any], None]:
        def append(data: Any) -> None:
            if event == "open":
                log.append([event])
            elif event == "close":
                log.append([event, data["code"]])
            else:
                log.append([event, data])

        return append

    for event in events:
        client.on(event, listener(event))
    return log


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds (the deadline only stops a test that would hang)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def recover_of(url: str) -> tuple[str, dict[str, Any]]:
    """The raw (encoded) ``recover`` value of a URL, and its decoded content."""
    raw = dict(part.split("=", 1) for part in urllib.parse.urlsplit(url).query.split("&"))["recover"]
    return raw, json.loads(urllib.parse.unquote(raw))


# Final closes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [4001, 4000, 4099, 1008])
async def test_a_final_close_ends_the_connection_until_connect(server: Server, code: int) -> None:
    client = Client(server.url(f"/closing/{code}"), reconnect=FAST)
    log = record(client, "open", "close", "reconnecting", "ended")
    client.connect()
    await until(lambda: any(entry[0] == "ended" for entry in log))
    await asyncio.sleep(0)
    state = client.state  # "closed": no socket and no retry, so nothing will reconnect
    assert isinstance(client.ended, ConnectionEnded)
    assert (client.ended.code, client.ended.reason) == (code, "Signed out")
    client.connect()  # the application decides: once more
    await until(lambda: [entry[0] for entry in log].count("ended") == 2)
    ended = ["ended", {"code": code, "reason": "Signed out", "final": True}]
    assert log == [["open"], ["close", code], ended, ["open"], ["close", code], ended]
    assert state == "closed"
    assert server.control()["opens"] == 2
    with pytest.raises(ConnectionEnded, match=f"close code {code}: Signed out"):
        await client.wait_open()
    await client.close()


@pytest.mark.parametrize("code", [4100, 1011, 1013])
async def test_other_close_codes_reconnect(server: Server, code: int) -> None:
    client = Client(server.url(f"/closing/{code}"), reconnect=FAST)
    log = record(client, "open", "ended")
    client.connect()
    await until(lambda: len(log) >= 3)
    await client.close()
    assert log[:3] == [["open"], ["open"], ["open"]]


@pytest.mark.parametrize(("code", "now"), [(1012, True), (4100, True), (1011, False), (1013, False)])
async def test_a_restart_or_a_renewed_session_reconnects_at_once(
    server: Server, code: int, now: bool
) -> None:
    client = Client(server.url(f"/closing/{code}"), reconnect=Reconnect(initial=60, max=60, jitter=0))
    log = record(client, "reconnecting")
    client.connect()
    await until(lambda: len(log) >= 1)
    await client.close()
    assert log[0][1]["delay"] == (0 if now else 60)  # at once: the next ones may already be logged too


async def test_a_client_that_closes_with_a_final_code_itself_gets_no_ended(server: Server) -> None:
    client = Client(server.url("/echo"))
    log = record(client, "open", "close", "ended")
    async with client:
        await client.close(4001, "bye")
    assert log == [["open"], ["close", 4001]]
    assert client.ended is None
    with pytest.raises(ConnectionLost, match=r"client is closed .* call connect\(\) again"):
        await client.wait_open()


# Attempts that never open ------------------------------------------------------------------------


async def test_a_refusing_guard_leads_to_unreachable_once_per_streak(server: Server) -> None:
    client = Client(
        server.url("/guarded"), reconnect=Reconnect(0.01, 0.02, jitter=0, stable=0), refused_after=3
    )
    log = record(client, "open", "close", "unreachable", "reconnecting")
    client.connect()
    await until(lambda: [entry[0] for entry in log].count("reconnecting") >= 6)
    server.control(refuse=False)  # the user signed in, say: the next attempt opens
    await asyncio.wait_for(client.wait_open(), 5)
    echoes: list[Any] = []
    client.on("echo", echoes.append)
    await client.emit("echo", "in")
    await until(lambda: len(echoes) == 1)
    server.control(refuse=True)
    before = len(log)
    assert client._ws is not None
    client._ws.transport.abort()  # a drop, not close(): the client means to come back, and is refused again
    await until(lambda: [entry[0] for entry in log[before:]].count("unreachable") == 1)
    await client.close()
    events = [entry[0] for entry in log]
    unreachable = [entry[1] for entry in log if entry[0] == "unreachable"]
    assert unreachable == [{"attempts": 3, "status": 403}] * 2  # once per streak; the count reset on open
    first = events.index("unreachable")
    assert events[:first] == ["close", "reconnecting", "close", "reconnecting", "close"]  # after the 3rd
    assert events[first + 1] == "reconnecting"  # and it keeps trying
    assert events.count("open") == 1
    assert server.control()["guard_calls"] >= 10


async def test_opening_a_refused_connection_raises_unreachable_with_the_status(server: Server) -> None:
    with pytest.raises(ConnectionUnreachable, match=r"3 connection attempts .* refused the upgrade \(403"):
        async with connect(server.url("/guarded"), reconnect=FAST) as client:
            raise AssertionError(f"opened: {client}")


async def test_a_server_down_is_unreachable_too() -> None:
    client = Client(f"ws://127.0.0.1:{free_port()}/ws/echo", reconnect=FAST, refused_after=2)
    log = record(client, "unreachable")
    client.connect()
    await until(lambda: len(log) == 1)
    state = client.state
    await client.close()
    assert log == [["unreachable", {"attempts": 2, "status": None}]]
    assert state in ("waiting", "connecting")  # it keeps trying


# Liveness ----------------------------------------------------------------------------------------


async def test_a_silent_server_is_noticed_and_the_client_reconnects(server: Server) -> None:
    proxy = FreezableProxy(server.port)
    await proxy.start()
    client = Client(
        f"ws://127.0.0.1:{proxy.port}/ws/echo", liveness=Liveness(idle=0.2, timeout=1.5), reconnect=FAST
    )
    log: list[list[Any]] = []
    client.on("open", lambda data: log.append(["open"]))
    client.on("close", lambda data: log.append(["close", data["code"], data["reason"]]))
    echoes: list[Any] = []
    client.on("echo", echoes.append)
    try:
        async with client:
            await client.emit("echo", "before")
            await until(lambda: len(echoes) == 1)
            proxy.freeze()  # the connection stays open for the client, and nothing goes through any more
            await until(lambda: len(log) == 3, 15)
            await client.emit("echo", "after")
            await until(lambda: len(echoes) == 2)
            assert len(log) == 3
    finally:
        await proxy.stop()
    assert log[:3] == [["open"], ["close", 1006, "No answer from the server within 1.5 s."], ["open"]]
    assert echoes == [{"message": "before"}, {"message": "after"}]
    assert len(proxy.connections) == 2


@pytest.mark.parametrize("path", ["/echo", "/crafted/pong"])
async def test_a_quiet_server_that_answers_keeps_its_connection(
    server: Server, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    # /echo answers "ping" with a warning (an unbound event); /crafted/pong as a server reserving "ping".
    client = Client(server.url(path), liveness=Liveness(idle=0.1, timeout=5))
    log = record(client, "open", "close", "warning", "pong")
    with caplog.at_level(logging.WARNING, "tornado_websockets.client"):
        async with client:
            await until(lambda: client.probes >= 4)
    assert log == [["open"], ["close", 1000]]
    assert caplog.records == []  # the answers are the client's business, not the application's


# Gaps --------------------------------------------------------------------------------------------


async def test_a_jump_in_seq_is_recovered_by_reconnecting_with_the_position(server: Server) -> None:
    client = Client(server.url("/crafted/gap"), reconnect=FAST)
    log: list[list[Any]] = []
    client.on("open", lambda data: log.append(["open"]))
    client.on("gap", lambda data: log.append(["gap", data]))
    client.on("said", lambda data, frame: log.append(["said", data, frame.seq]))
    async with client:
        await until(lambda: [entry[0] for entry in log].count("said") == 6)
    assert log == [
        ["open"],
        ["said", {"n": 1}, 1],
        ["said", {"n": 2}, 2],
        ["gap", {"stream": "*", "expected": 3, "received": 5, "recovering": True}],
        ["open"],
        *[["said", {"n": n}, n] for n in (3, 4, 5, 6)],  # 5 once: not from the socket that skipped
    ]
    first, second = server.control()["urls"]["gap"]
    assert "recover" not in first
    assert recover_of(second)[1] == {"epoch": "e1", "streams": {"*": 2}, "tokens": {"*": "token-0"}}


async def test_with_reconnect_off_a_gap_is_told_and_accepted(server: Server) -> None:
    client = Client(server.url("/crafted/gap"), reconnect=False)
    log: list[list[Any]] = []
    client.on("gap", lambda data: log.append(["gap", data]))
    client.on("said", lambda data, frame: log.append(["said", frame.seq]))
    async with client:
        await until(lambda: len(log) == 4)
        state = client.state
    assert log == [
        ["said", 1],
        ["said", 2],
        ["gap", {"stream": "*", "expected": 3, "received": 5, "recovering": False}],
        ["said", 5],
    ]
    assert state == "open"
    assert len(server.control()["urls"]["gap"]) == 1


# Positions kept, forgotten and bounded -----------------------------------------------------------


async def test_left_rooms_are_forgotten_and_1500_rooms_fit_in_4_kb(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(server.url("/crafted/rooms"), reconnect=FAST)
    log = record(client, "resync", "done")
    with caplog.at_level(logging.WARNING, "tornado_websockets.client"):
        async with client:
            await until(lambda: any(entry[0] == "done" for entry in log))
    _, second = server.control()["urls"]["rooms"]
    raw, recover = recover_of(second)
    assert len(raw) <= MAX_RECOVER_LENGTH
    streams, tokens = recover["streams"], recover["tokens"]
    newest_first = ["room-0000", *(room for room in reversed(ROOMS[1:]) if room not in LEFT), "*"]
    assert list(streams) == newest_first[: len(streams)]  # only the oldest were dropped
    assert len(streams) >= 30
    assert streams["room-0000"] == 11
    assert set(streams.values()) == {10, 11}
    assert tokens == {stream: token(stream) for stream in streams}
    assert not LEFT & set(streams)
    # Back in room-0001, whose position was dropped: nothing was replayed, so the application reloads it.
    assert log == [["resync", {"stream": "room-0001"}], ["done", {}]]
    dropped = [record.getMessage() for record in caplog.records if "left out" in record.getMessage()]
    assert dropped == [
        f"{len(newest_first) - len(streams)} stream positions left out of the reconnection (over "
        f"{MAX_RECOVER_LENGTH} characters); they resync."
    ]


async def test_a_real_server_takes_the_bounded_request_of_1500_rooms(server: Server) -> None:
    client = Client(server.url("/many"), reconnect=False)
    log = record(client, "resync", "said")
    positions = []
    client.on("stream", positions.append)
    joined: list[Any] = []
    client.on("joined_all", joined.append)
    async with client:
        await client.emit("join", {"rooms": 1500})
        await until(lambda: len(positions) == 1501 and len(joined) == 1, 30)  # "*" and every room
        await client.emit("say", {"room": "room-1499", "n": 1})
        await until(lambda: len(log) == 1)
    client.connect()
    await client.wait_open()
    assert client.last_url is not None
    await client.emit("join", {"rooms": 1500})  # back in every room: kept ones caught up, the others resync
    await until(lambda: len(positions) == 3002 and len(joined) == 2, 30)
    await client.emit("say", {"room": "room-1499", "n": 2})
    await until(lambda: len(log) >= 2 and log[-1][0] == "said")
    await client.close()
    raw, recover = recover_of(client.last_url)
    assert len(raw) <= MAX_RECOVER_LENGTH
    kept = set(recover["streams"])
    assert recover["streams"]["room-1499"] == 1
    resynced = [data["stream"] for event, data in log if event == "resync"]
    assert sorted(resynced) == sorted({"*", *ROOMS} - kept)  # every room left out is reloaded, no other
    assert [data["n"] for event, data in log if event == "said"] == [1, 2]


async def test_frames_missed_during_a_drop_come_back_in_order(server: Server) -> None:
    listener = Client(server.url("/many"), reconnect=FAST)
    heard: list[Any] = []
    listener.on("said", lambda data: heard.append(data["n"]))
    gaps = record(listener, "gap", "resync")
    async with listener, connect(server.url("/many")) as talker:
        await listener.emit("join", {"rooms": 1})
        await until(lambda: "room-0000" in listener.positions.streams)
        await talker.emit("say", {"room": "room-0000", "n": 1})
        await until(lambda: heard == [1])
        assert listener._ws is not None
        listener._ws.transport.abort()  # a network drop
        for n in (2, 3, 4):
            await talker.emit("say", {"room": "room-0000", "n": n})
        await asyncio.sleep(0.05)
        await listener.wait_open()
        await listener.emit("join", {"rooms": 1})  # the missed frames are replayed on join
        await talker.emit("say", {"room": "room-0000", "n": 5})
        await until(lambda: len(heard) >= 5)
    assert heard == [1, 2, 3, 4, 5]
    assert gaps == []


# Requests, the outbox, iteration, typed listeners, headers ---------------------------------------


async def test_requests_get_the_reply_the_failure_or_a_timeout(server: Server) -> None:
    async with connect(server.url("/echo")) as client:
        assert await client.request("add", {"a": 2, "b": 3}) == 5
        with pytest.raises(RequestFailed, match=r"No such thing\."):
            await client.request("fail")
        with pytest.raises(RequestTimeout, match=r'No reply to "slow" within 0\.2 s'):
            await client.request("slow", {"seconds": 2}, timeout=0.2)
        pending = asyncio.ensure_future(client.request("slow", {"seconds": 5}))
        await asyncio.sleep(0.1)
    with pytest.raises(ConnectionLost, match='before the reply to "slow"'):
        await pending


async def test_a_drop_fails_the_requests_sent_and_the_client_comes_back(server: Server) -> None:
    async with connect(server.url("/echo"), reconnect=FAST) as client:
        pending = asyncio.ensure_future(client.request("slow", {"seconds": 5}))
        await asyncio.sleep(0.1)
        assert client._ws is not None
        client._ws.transport.abort()  # a network drop: the reply cannot come on another connection
        with pytest.raises(ConnectionLost, match='before the reply to "slow"'):
            await pending
        assert await client.request("add", {"a": 1, "b": 1}) == 2  # on the next connection


async def test_server_frames_named_after_the_clients_own_events_are_ignored(server: Server) -> None:
    client = Client(server.url("/crafted/reserved"))
    log = record(client, "ended", "gap", "server_error", "hello")
    async with client:
        await until(lambda: len(log) == 2)
    assert log == [["server_error", {"message": "It failed.", "event": "buy"}], ["hello", {}]]
    assert client.dropped["reserved_name"] == 2


async def test_the_outbox_keeps_the_newest_frames_while_disconnected(server: Server) -> None:
    client = Client(server.url("/echo"), outbox=2)
    echoes: list[Any] = []
    client.on("echo", lambda data: echoes.append(data["message"]))
    dropped = asyncio.ensure_future(client.request("add", {"a": 1, "b": 1}))
    await asyncio.sleep(0)
    for n in (1, 2):
        await client.emit("echo", n)
    with pytest.raises(RequestDropped, match="full outbox"):
        await dropped
    assert (client.queued, client.dropped["outbox_full"]) == (2, 1)
    async with client:
        await until(lambda: len(echoes) == 2)
    assert echoes == [1, 2]


async def test_async_for_yields_the_servers_events_until_the_client_closes(server: Server) -> None:
    async with connect(server.url("/echo")) as client:
        received = []
        iterator = aiter(client)
        for n in range(3):
            await client.emit("echo", {"n": n})
        async for event, data in iterator:
            received.append((event, data))
            if len(received) == 3:
                await client.close()
    assert received == [("echo", {"n": n}) for n in range(3)]


@dataclass
class Said:
    text: str
    n: int


async def test_a_typed_listener_gets_its_type_and_bad_data_is_counted(server: Server) -> None:
    typed: list[Said] = []
    raw: list[Any] = []

    def on_said(data: Said) -> None:
        typed.append(data)

    async with connect(server.url("/echo")) as client:
        client.on("said", on_said)
        client.on("said", raw.append)
        await client.emit("say", {"text": "hi", "n": 1})
        await client.emit("say", {"text": "hi", "n": "not a number"})
        await until(lambda: len(raw) == 2)
    assert typed == [Said("hi", 1)]
    assert client.dropped["payload_error"] == 1


async def test_async_listeners_and_decorators(server: Server) -> None:
    answered = asyncio.Event()
    async with connect(server.url("/echo")) as client:

        @client.on("echo")
        async def reply(data: dict[str, Any]) -> None:
            assert await client.request("add", {"a": data["n"], "b": 1}) == 2
            answered.set()

        await client.emit("echo", {"n": 1})
        await asyncio.wait_for(answered.wait(), 10)


async def test_headers_and_cookies_reach_the_server(server: Server) -> None:
    options: dict[str, Any] = {"headers": {"X-Token": "t0k"}, "cookies": {"sessionid": "abc", "lang": "fr"}}
    async with connect(server.url("/echo"), **options) as client:
        seen = await client.request("headers")
    assert seen == {"cookie": "sessionid=abc; lang=fr", "token": "t0k"}


def test_the_blocking_client(server: Server) -> None:
    with connect_sync(server.url("/echo")) as client:
        with pytest.raises(ClientUsageError, match="non-empty str"):
            client.on("", print)  # raised in the caller's thread, not lost in the client's
        assert client.request("add", {"a": 1, "b": 2}) == 3
        events = iter(client)
        client.emit("echo", "hi")
        assert next(events) == ("echo", {"message": "hi"})


# Binary payloads (docs/protocol.rst) -------------------------------------------------------------


async def test_bytes_travel_as_messagepack_frames_when_negotiated(server: Server) -> None:
    thumbs: list[Any] = []
    client = Client(server.url("/crafted/msgpack"), binary=True)
    client.on("thumb", thumbs.append)
    async with client:
        await until(lambda: len(thumbs) == 1)
        upload = await client.request("upload", {"png": b"\x01\x02", "name": "a.png"})
        plain = await client.request("plain", {"n": 1})
    assert thumbs == [{"png": b"\x89PN"}]  # the page's example, byte for byte
    assert upload == {"binary": True, "data": {"png": b"\x01\x02", "name": "a.png"}}
    assert plain == {"binary": False, "data": {"n": 1}}  # a frame without bytes stays JSON text


async def test_without_messagepack_bytes_travel_as_base64(server: Server) -> None:
    thumbs: list[Any] = []
    client = Client(server.url("/crafted/msgpack"))  # binary=False, the default
    client.on("thumb", thumbs.append)
    async with client:
        await until(lambda: len(thumbs) == 1)
        upload = await client.request("upload", {"png": b"\x01\x02"})
    assert thumbs == [{"png": "iVBO"}]
    assert upload == {"binary": False, "data": {"png": "AQI="}}
