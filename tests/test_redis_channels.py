"""Where the backplane's frames travel, the strategies (tornado_websockets.redis.channels, .cluster)."""

from __future__ import annotations

import pytest

from tornado_websockets.redis.channels import SingleChannel
from tornado_websockets.redis.cluster import ShardedChannels, is_cluster_url, without_cluster


def test_one_channel_carries_every_stream() -> None:
    single = SingleChannel()
    assert single.channel_for("C", "/p", "*") == single.channel_for("C", "/p", "lobby") == "C"
    assert single.keys("C", "/p").seq("lobby") == "C:replay:/p:lobby:seq"
    assert (single.publish_command, single.counts_unheard) == ("PUBLISH", True)


def test_a_sharded_channel_per_stream_wanted_while_it_has_local_members() -> None:
    sharded = ShardedChannels()
    assert sharded.channel_for("C", "/p", "lobby") == "{C:/p}:lobby"
    assert sharded.keys("C", "/p").seq("lobby") == "{C:/p}:lobby:seq"  # one slot per path
    sharded.membership_changed("C", "/p", "lobby", True)
    sharded.membership_changed("C", "/p", "lobby", True)
    sharded.membership_changed("C", "/p", "*", True)
    sharded.membership_changed("C", "/p", "lobby", False)
    assert dict(sharded.wanted) == {"{C:/p}:lobby": 1, "{C:/p}:*": 1}
    sharded.membership_changed("C", "/p", "lobby", False)
    assert dict(sharded.wanted) == {"{C:/p}:*": 1}


async def test_a_read_before_any_subscription_is_a_connection_error() -> None:
    with pytest.raises(ConnectionError, match="not subscribed"):
        await ShardedChannels().before_read("{C:/p}:lobby")


def test_cluster_urls() -> None:
    assert is_cluster_url("redis://h:7000/0?channel=a&cluster=1")
    assert not is_cluster_url("redis://h:7000/0?channel=a")
    assert without_cluster("redis://h:7000/0?cluster=1&channel=a") == "redis://h:7000/0?channel=a"
