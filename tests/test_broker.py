"""The backplane interface: envelopes on the wire, brokers from URLs, and the in-process broker."""

from __future__ import annotations

import sys

import pytest

from tests.polling import wait_until
from tornado_websockets import delivery, protocol
from tornado_websockets.broker import Broker, Envelope, broker_from_url
from tornado_websockets.presence import Member
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket

FRAME = protocol.encode_emit("news", {"title": "é\n✓"})


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope("/chat", FRAME),
        Envelope("/chat", FRAME, room="lobby", skip="c1", origin="p1"),
        Envelope("/room/<name>", FRAME, room="é ✓", origin="p1"),
        Envelope("/x", b"", origin="p1"),  # an empty frame survives
        Envelope("/x", b"line one\nline two\n"),  # the frame may hold newlines: only the first splits
        Envelope("/x", b"\xff\x00 not even UTF-8"),  # the frame is carried as it is
        Envelope("/x", FRAME, room="lobby", seq=1_000_001, base=1_000_000),  # numbered, and its base
    ],
)
def test_pack_then_unpack_gives_the_envelope_back(envelope: Envelope) -> None:
    packed = envelope.pack()
    assert packed.endswith(b"\n" + envelope.frame)
    assert Envelope.unpack(packed) == envelope


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no header line"),
        (b'{"p": "/x"}', "no header line"),
        (b"[]\nframe", "bad header"),
        (b'{"r": "lobby"}\nframe', "bad header"),
        (b'{"p": 3}\nframe', "bad header"),
    ],
)
def test_unpack_refuses_what_is_not_an_envelope(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Envelope.unpack(data)


def test_unpack_refuses_a_header_that_is_not_json() -> None:
    with pytest.raises(ValueError, match=r"(?i)expect"):  # the codec's own error (orjson or json)
        Envelope.unpack(b"{not json\nframe")


@pytest.mark.parametrize("url", [None, "", "memory://"])
def test_in_process_urls(url: str | None) -> None:
    broker = broker_from_url(url)
    assert type(broker) is Broker
    assert not broker.cross_process


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://h:1/0", "unix:///run/redis.sock"])
def test_redis_urls(url: str) -> None:
    from tornado_websockets.broker_redis import RedisBroker

    broker = broker_from_url(url)
    assert isinstance(broker, RedisBroker)
    assert broker.cross_process


@pytest.mark.parametrize("url", ["amqp://localhost", "redis", "127.0.0.1:6379", "Memory://"])
def test_unknown_urls_name_the_choices(url: str) -> None:
    with pytest.raises(ValueError, match="use memory:// or redis://"):
        broker_from_url(url)


def test_redis_without_its_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # The redis package is installed for the test suite; None in sys.modules makes Python's
    # import machinery fail as if it were not.
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "tornado_websockets.broker_redis", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'django-tornado-websockets\[redis\]'"):
        broker_from_url("redis://127.0.0.1:6379/0")


async def test_the_in_process_broker_keeps_everything_in_the_process() -> None:
    broker = Broker()
    assert broker.id != Broker().id
    assert repr(broker) == f"<Broker {broker.id[:8]}>"
    received: list[Envelope] = []
    await broker.start(received.append)
    assert broker.deliver is not None
    broker.publish(Envelope("/x", FRAME))  # nobody else to reach: nothing happens
    assert received == []
    with pytest.raises(NotImplementedError, match="cannot reach other processes"):
        broker.publish_sync(Envelope("/x", FRAME))
    local = (Member("c1", "ann", "ann", broker.id),)
    assert await broker.presence("/x", None, local) == local
    with pytest.raises(NotImplementedError, match="cannot see other processes"):
        broker.presence_sync("/x", None)
    await broker.stop()
    assert broker.deliver is None


async def test_emits_go_local_first_then_to_the_broker() -> None:
    published: list[Envelope] = []

    class Recording(Broker):
        def publish(self, envelope: Envelope) -> None:
            published.append(envelope)

    broker = TornadoWrapper.use_broker(Recording())
    ws = WebSocket("/news")
    async with serve() as server, server.connect("/news") as client:
        await wait_until(lambda: len(ws.handlers) == 1)
        ws.emit("headline", {"title": "hi"})
        assert await client.wait_for("headline") == {"title": "hi"}
        assert published == [
            Envelope("/news", protocol.encode_emit("headline", {"title": "hi"}), origin=broker.id)
        ]
        # An envelope from elsewhere reaches the clients; one for an unknown path is counted.
        TornadoWrapper.deliver_envelope(Envelope("/news", protocol.encode_emit("relayed"), origin="other"))
        assert await client.wait_for("relayed") == {}
        TornadoWrapper.deliver_envelope(Envelope("/nowhere", FRAME, origin="other"))
        assert delivery.dropped() == {(delivery.UNKNOWN_PATH, "/nowhere"): 1}


def test_use_broker_takes_a_broker_or_a_url() -> None:
    mine = Broker()
    assert TornadoWrapper.use_broker(mine) is mine
    assert TornadoWrapper.broker is mine
    assert type(TornadoWrapper.use_broker("memory://")) is Broker
