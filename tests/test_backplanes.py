"""Which backplane a URL names (tornado_websockets.backplanes)."""

from __future__ import annotations

import pytest

from tornado_websockets import backplanes, broker
from tornado_websockets.broker import Broker
from tornado_websockets.redis.broker import RedisBroker
from tornado_websockets.redis.channels import SingleChannel
from tornado_websockets.redis.cluster import RedisClusterBroker, ShardedChannels


def test_each_url_names_its_broker() -> None:
    assert type(backplanes.broker_from_url(None)) is Broker
    assert type(backplanes.broker_from_url("memory://")) is Broker
    single = backplanes.broker_from_url("redis://127.0.0.1:6379/0?channel=app")
    assert type(single) is RedisBroker
    assert isinstance(single.channels, SingleChannel)
    cluster = backplanes.broker_from_url("redis://127.0.0.1:7000/0?cluster=1")
    assert type(cluster) is RedisClusterBroker
    assert isinstance(cluster.channels, ShardedChannels)
    with pytest.raises(ValueError, match="use memory:// or redis://"):
        backplanes.broker_from_url("amqp://x")


def test_the_old_name_in_broker_gives_the_same() -> None:
    assert type(broker.broker_from_url("redis://127.0.0.1:6379/0")) is RedisBroker
