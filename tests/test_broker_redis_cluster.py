"""The backplane on a real 3-primary Redis Cluster: hash-tagged keys, sharded pub/sub per stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backplane_app import news_app
from tests.polling import wait_until
from tests.redis_cluster import RedisCluster
from tests.servers import backplane, backplane_script, connect_when_up, free_port, running
from tests.test_presence_redis import announcements
from tests.test_recovery_redis import joined, positions, recover_query, said, status
from tornado_websockets.broker import broker_from_url
from tornado_websockets.broker_redis import CONNECTED
from tornado_websockets.broker_redis_cluster import RedisClusterBroker, is_cluster_url
from tornado_websockets.recovery_redis import ReplayKeys
from tornado_websockets.redis.client import cluster_nodes
from tornado_websockets.testing import serve
from tornado_websockets.tornadowrapper import TornadoWrapper


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    with RedisCluster.running(tmp_path) as started:
        yield started


def test_a_cluster_url_makes_a_cluster_broker() -> None:
    assert is_cluster_url("redis://h:7000/0?cluster=1")
    assert not is_cluster_url("redis://h:7000/0?channel=cluster")
    broker = broker_from_url("redis://127.0.0.1:7000/0?channel=app&cluster=1")
    assert isinstance(broker, RedisClusterBroker)
    assert (broker.url, broker.channel) == ("redis://127.0.0.1:7000/0", "app")
    assert broker.share_presence is True


def test_a_cluster_url_may_name_several_nodes() -> None:
    broker = broker_from_url("redis://a:7000,b:7001/0?cluster=1&channel=app")
    assert isinstance(broker, RedisClusterBroker)
    assert (broker.url, broker.channel) == ("redis://a:7000,b:7001/0", "app")
    assert cluster_nodes("redis://:pw@a:7000,[::1]:7001/0") == (
        "redis://:pw@a:7000/0",
        [("a", 7000), ("::1", 7001)],
    )
    with pytest.raises(ValueError, match="should read host:port"):
        RedisClusterBroker("redis://a:7000,b/0")


async def test_the_backplane_connects_through_any_node_the_url_names(cluster: RedisCluster) -> None:
    """The first node the URL names is down: the processes (and an Emitter) go through the next."""
    url = f"redis://127.0.0.1:{free_port()},127.0.0.1:{cluster.ports[1]}/0?cluster=1"
    ports = free_port(), free_port()
    page = "ws://127.0.0.1:{}/ws/news".format
    async with running(backplane(ports[0], url)), running(backplane(ports[1], url)):
        talker = await connect_when_up(page(ports[1]))
        reader = await connect_when_up(page(ports[0]))
        for client in (talker, reader):
            while (await status(client))["state"] != CONNECTED:
                await asyncio.sleep(0.05)
        [position] = [frame.data for frame in await joined(reader)]
        await joined(talker)
        await wait_until(
            lambda: cluster.shard_subscribers("{tornado_websockets:/news}:lobby") == 2, timeout=20
        )
        await talker.emit("say", {"room": "lobby", "n": 1})
        assert await said(reader, 1) == [(1, position["seq"] + 1)]
        assert (await backplane_script("emitter", url, "lobby", "cron", "/news")).strip() == "2"
        assert await said(reader, 1) == [("cron", position["seq"] + 2)]
        for client in (talker, reader):
            client.close()


def test_keys_of_a_path_share_one_hash_tag_and_each_stream_has_a_channel() -> None:
    keys = ReplayKeys("app", "/news", tagged=True)
    named = [
        keys.conf,
        keys.epoch,
        keys.seq("lobby"),
        keys.base("lobby"),
        keys.frames("lobby"),
        keys.pubsub("lobby"),
    ]
    assert named == [
        "{app:/news}:recover",
        "{app:/news}:epoch",
        "{app:/news}:lobby:seq",
        "{app:/news}:lobby:base",
        "{app:/news}:lobby:frames",
        "{app:/news}:lobby",
    ]


async def test_rooms_travel_on_sharded_channels_to_the_processes_with_members(cluster: RedisCluster) -> None:
    ports = free_port(), free_port()
    url = "ws://127.0.0.1:{}/ws/chat".format
    lobby, kitchen = "{tornado_websockets:/chat}:lobby", "{tornado_websockets:/chat}:kitchen"
    async with (
        running(backplane(ports[0], cluster.url)),
        running(backplane(ports[1], cluster.url)),
    ):
        a = await connect_when_up(url(ports[0]))
        b = await connect_when_up(url(ports[1]))
        await wait_until(lambda: cluster.shard_subscribers("{tornado_websockets:/chat}:*") == 2, timeout=20)
        assert await a.request("join", {"room": "lobby"}) == ["lobby"]
        assert await b.request("join", {"room": "lobby"}) == ["lobby"]
        assert await a.request("join", {"room": "kitchen"}) == ["kitchen", "lobby"]
        await wait_until(lambda: cluster.shard_subscribers(lobby) == 2, timeout=10)
        # Only the process with a member in the kitchen listens to it.
        await wait_until(lambda: cluster.shard_subscribers(kitchen) == 1, timeout=10)

        await a.emit("say", {"room": "lobby", "text": "hello"})
        assert (await b.wait_for("said"))["text"] == "hello"
        assert (await a.wait_for("said"))["text"] == "hello"
        await b.emit("say", {"text": "everyone"})  # the path's own stream
        assert (await a.wait_for("said"))["text"] == "everyone"
        assert (await b.wait_for("said"))["text"] == "everyone"

        # From a process that runs no server, through the cluster too.
        assert (await backplane_script("emitter", cluster.url, "lobby", "from-cron")).strip() == "2"
        assert (await b.wait_for("said"))["text"] == "from-cron"
        assert (await a.wait_for("said"))["text"] == "from-cron"

        # From a process without a member in the kitchen: only the other one hears it, as meant,
        # and nothing is counted as missed.
        await b.emit("say", {"room": "kitchen", "text": "to the kitchen"})
        assert (await a.wait_for("said"))["text"] == "to the kitchen"
        assert (await b.request("backplane"))["missed"] == 0

        # The last member leaves: the process unsubscribes.
        a.close()
        await wait_until(lambda: cluster.shard_subscribers(kitchen) == 0, timeout=10)
        await wait_until(lambda: cluster.shard_subscribers(lobby) == 1, timeout=10)
        b.close()


async def test_a_client_recovers_from_another_process_on_the_cluster(cluster: RedisCluster) -> None:
    ports = free_port(), free_port()
    url = "ws://127.0.0.1:{}/ws/news".format
    async with (
        running(backplane(ports[0], cluster.url)),
        running(backplane(ports[1], cluster.url)),
    ):
        talker = await connect_when_up(url(ports[1]))
        reader = await connect_when_up(url(ports[0]))
        # Both processes connected to the cluster: an emit before would go out unnumbered.
        await wait_until(lambda: cluster.shard_subscribers("{tornado_websockets:/news}:*") == 2, timeout=20)
        [position] = [frame.data for frame in await joined(reader)]
        await joined(talker)
        await talker.emit("say", {"room": "lobby", "n": "live"})
        [(_, first)] = await said(reader, 1)
        assert first == position["seq"] + 1
        await said(talker, 1)
        reader.close()
        for n in range(5):
            await talker.emit("say", {"room": "lobby", "n": n})
        await said(talker, 5)
        query = recover_query(position["epoch"], {"lobby": first}, {"lobby": position["token"]})
        back = await connect_when_up(url(ports[1]) + query)
        frames = await joined(back)
        assert [(f.data["n"], f.seq) for f in frames[:-1]] == [(n, first + 1 + n) for n in range(5)]
        # Only the process with members in the lobby listens: the reader's left with it.
        assert (await backplane_script("emitter", cluster.url, "lobby", "cron", "/news")).strip() == "1"
        assert await said(back, 1) == [("cron", first + 6)]
        back.close()
        talker.close()


async def test_a_client_that_comes_before_the_cluster_is_up_gets_its_positions_once_it_is(
    tmp_path: Path,
) -> None:
    """Issue 28 §2: the catch-up found the broker connecting, gave up and wrote no position, ever."""
    later = RedisCluster(tmp_path)  # not started yet: the broker keeps trying to connect
    news_app()
    broker = RedisClusterBroker(later.url, retry_base=0.05, retry_cap=0.2)
    TornadoWrapper.use_broker(broker)
    try:
        async with serve() as server:
            client = await server.connect("/news")
            assert await client.request("join", {"room": "lobby"}) == ["lobby"]
            assert broker.state != CONNECTED
            await asyncio.to_thread(later.start)
            found = await positions(client, 2)
            assert set(found) == {"*", "lobby"}
            await client.emit("say", {"room": "lobby", "n": 1})
            assert await said(client, 1) == [(1, found["lobby"]["seq"] + 1)]
            client.close()
    finally:
        later.stop()


async def test_presence_and_joined_left_once_per_user_on_the_cluster(cluster: RedisCluster) -> None:
    ports = free_port(), free_port()
    url = "ws://127.0.0.1:{}/ws/room?user={}".format
    async with (
        running(backplane(ports[0], cluster.url), env={"TWS_PRESENCE_TTL": "1.5"}),
        running(backplane(ports[1], cluster.url), env={"TWS_PRESENCE_TTL": "1.5"}),
    ):
        bob = await connect_when_up(url(ports[0], "bob"))
        await wait_until(lambda: cluster.shard_subscribers("{tornado_websockets:/room}:*") == 1, timeout=20)
        await bob.request("join", {"room": "lobby"})
        alice0 = await connect_when_up(url(ports[0], "alice"))
        alice1 = await connect_when_up(url(ports[1], "alice"))
        await wait_until(lambda: cluster.shard_subscribers("{tornado_websockets:/room}:*") == 2, timeout=20)
        await alice1.request("join", {"room": "lobby"})
        assert (await announcements(bob, "joined"))["user"] == "alice"
        await alice0.request("join", {"room": "lobby"})  # her second tab, on the other process
        carol = await connect_when_up(url(ports[0], "carol"))
        await carol.request("join", {"room": "lobby"})
        assert (await announcements(bob, "joined"))["user"] == "carol"  # not alice again
        for _ in range(100):  # presence is shared a round trip after the join
            who = await bob.request("who", {"room": "lobby"})
            if who["connections"] == 4:
                break
            await asyncio.sleep(0.05)
        assert who == {"users": ["alice", "bob", "carol"], "connections": 4}
        for client in (bob, alice0, alice1, carol):
            client.close()
