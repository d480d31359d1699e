"""Publishing from a thread or a process without a loop (tornado_websockets.redis.publisher)."""

from __future__ import annotations

import redis

from tests.redis_server import RedisServer
from tests.servers import free_port
from tornado_websockets import delivery
from tornado_websockets.broker import Envelope
from tornado_websockets.redis.publisher import SyncPublisher
from tornado_websockets.redis.replay import ReplayKeys


def test_a_frame_reaches_the_subscribers_numbered_when_its_path_recovers(redis_server: RedisServer) -> None:
    listener = redis.Redis.from_url(redis_server.url)
    pubsub = listener.pubsub()
    pubsub.subscribe("C")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    publisher = SyncPublisher(redis_server.url, "C")
    try:
        assert publisher.publish(Envelope("/p", b"{}", origin="x")) == 1
        listener.hset(ReplayKeys("C", "/r").conf, "/r", "60 10")  # what a server declares
        assert publisher.publish(Envelope("/r", b'{"event":"e"}', origin="x")) == 1
        plain, numbered = pubsub.get_message(timeout=5), pubsub.get_message(timeout=5)
    finally:
        publisher.close()
        pubsub.close()
        listener.close()
    assert plain["data"] == Envelope("/p", b"{}", origin="x").pack()
    assert Envelope.unpack(numbered["data"]).seq is not None


def test_an_unreachable_redis_is_a_counted_drop() -> None:
    publisher = SyncPublisher(f"redis://127.0.0.1:{free_port()}/0", "C", timeout=1)
    assert publisher.publish(Envelope("/p", b"{}")) == 0
    assert delivery.dropped() == {(delivery.BACKPLANE_UNREACHABLE, "/p"): 1}
    publisher.close()
