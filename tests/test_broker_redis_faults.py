"""Issue 28 §3: while frames flow between two server processes, Redis restarts with its data, or the
subscriptions alone are killed. A reader on the other process receives every frame, in order, or
is told (``resync``, a jump in ``seq``); the talker's own clients receive every frame."""

from __future__ import annotations

import asyncio

from tests.faults import flow_through
from tests.redis_server import RedisServer
from tests.servers import backplane, connect_when_up, free_port, running
from tests.test_recovery_redis import joined, said, status
from tornado_websockets.broker_redis import DEFAULT_CHANNEL
from tornado_websockets.testing import WebSocketTestClient


async def two_processes_talking(
    redis_server: RedisServer, ports: tuple[int, int]
) -> tuple[WebSocketTestClient, WebSocketTestClient]:
    url = "ws://127.0.0.1:{}/ws/news".format
    talker = await connect_when_up(url(ports[1]))
    reader = await connect_when_up(url(ports[0]))
    while redis_server.subscribers(DEFAULT_CHANNEL) != 2:
        await asyncio.sleep(0.05)
    await joined(reader)
    await joined(talker)
    return talker, reader


async def test_a_redis_restarted_with_its_data_loses_no_frame_of_another_process_silently(
    redis_server: RedisServer,
) -> None:
    """Before: the reader missed the frames said while the talker's process reconnected, with no
    resync and no gap (Redis kept the stream's number, nobody took the lost ones)."""
    ports = free_port(), free_port()
    async with running(backplane(ports[0], redis_server.url)), running(backplane(ports[1], redis_server.url)):
        talker, reader = await two_processes_talking(redis_server, ports)

        def restart_with_data() -> None:
            with redis_server.client() as admin:
                admin.config_set("save", "3600 1")  # SIGTERM saves the data, the restart loads it
            redis_server.stop()
            redis_server.start()

        async def both_back() -> bool:
            return redis_server.subscribers(DEFAULT_CHANNEL) == 2

        reading, talking = await flow_through(talker, reader, restart_with_data, both_back)
        print(  # noqa: T201 (figures, shown with -s)
            f"reader: {len(reading.said)} frames, {len(reading.missing)} missed, "
            f"{reading.resyncs} resync, {reading.gaps} gaps; talker missed {len(talking.missing)}"
        )
        assert reading.in_order
        assert not reading.missing or reading.resyncs, reading
        assert talking.missing == []
        assert talking.in_order
        assert talking.resyncs == talking.gaps == 0  # it got them all, and its new position
        # The reader's process counts what its client missed; the talker's what it could not publish.
        reader_status, talker_status = await status(reader), await status(talker)
        assert reader_status["missed"] >= len(reading.missing)
        assert talker_status["dropped"] >= len(reading.missing)


async def test_frames_go_on_while_the_subscriptions_alone_are_killed(redis_server: RedisServer) -> None:
    """Before: the process whose subscription died dropped its own frames until it had subscribed
    again; now it publishes on its command connection meanwhile, and reads back what it missed."""
    ports = free_port(), free_port()
    env = {"TWS_RETRY_BASE": "0.5"}  # a long enough resubscription for frames to be said meanwhile
    async with (
        running(backplane(ports[0], redis_server.url), env=env),
        running(backplane(ports[1], redis_server.url), env=env),
    ):
        talker, reader = await two_processes_talking(redis_server, ports)

        def kill_subscriptions() -> None:
            with redis_server.client() as admin:
                assert admin.client_kill_filter(_type="pubsub") == 2

        async def both_back() -> bool:
            return redis_server.subscribers(DEFAULT_CHANNEL) == 2

        reading, talking = await flow_through(talker, reader, kill_subscriptions, both_back)
        print(f"reader: {len(reading.said)} frames, {len(reading.missing)} missed")  # noqa: T201
        assert (reading.missing, reading.resyncs, reading.gaps) == ([], 0, 0)
        assert reading.in_order
        assert (talking.missing, talking.resyncs, talking.gaps) == ([], 0, 0)
        assert talking.in_order
        assert (await status(reader))["reconnects"] >= 1
        assert (await status(talker))["dropped"] == 0


async def test_own_frames_said_while_resubscribing_reach_a_member_that_had_none_yet(
    redis_server: RedisServer,
) -> None:
    """A member whose stream had no frame yet: what its process publishes while subscribing again
    comes back to it by the read-back (nothing told this process to read that stream back before)."""
    port = free_port()
    async with running(backplane(port, redis_server.url), env={"TWS_RETRY_BASE": "1.0"}):
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/news")
        while redis_server.subscribers(DEFAULT_CHANNEL) != 1:
            await asyncio.sleep(0.05)
        position = (await joined(client))[-1].data
        with redis_server.client() as admin:
            assert admin.client_kill_filter(_type="pubsub") == 1
        while (await status(client))["state"] != "resubscribing":
            await asyncio.sleep(0.01)
        for n in range(5):
            await client.emit("say", {"room": "lobby", "n": n})
        assert await said(client, 5) == [(n, position["seq"] + 1 + n) for n in range(5)]
        assert (await status(client))["dropped"] == 0
        client.close()
