"""The helpers every part of the Redis backplane shares (tornado_websockets.redis.common)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys

import pytest
import redis
import redis.exceptions

from tests.polling import wait_until
from tests.servers import free_port
from tornado_websockets.redis.broker import UNREACHABLE
from tornado_websockets.redis.client import CONNECTION_ERRORS
from tornado_websockets.redis.cluster import RedisClusterBroker
from tornado_websockets.redis.common import raise_if_cancelling, redacted, split_url, text


def test_text_decodes_bytes_and_keeps_str() -> None:
    assert text(b"caf\xc3\xa9") == "café"
    assert text("café") == "café"


def test_redacted_hides_the_password_only() -> None:
    assert redacted("redis://:secret@host:6379/0") == "redis://:***@host:6379/0"
    assert redacted("redis://ann:secret@host/0") == "redis://ann:***@host/0"
    assert redacted("redis://host:6379/0") == "redis://host:6379/0"


def test_split_url_takes_out_the_channel_only() -> None:
    assert split_url("redis://h/0?channel=app&ssl_cert_reqs=none") == (
        "redis://h/0?ssl_cert_reqs=none",
        "app",
    )
    assert split_url("redis://h/0") == ("redis://h/0", None)


def test_a_cluster_no_node_answers_is_a_connection_error() -> None:
    # Not a RedisError: without it, a cluster that is down was logged as a bug at every attempt.
    # redis-py 8.0 raises RedisClusterException itself; 8.2 its subclass RedisClusterUnreachableError.
    assert not issubclass(redis.exceptions.RedisClusterException, redis.RedisError)
    assert issubclass(redis.exceptions.RedisClusterException, CONNECTION_ERRORS)


async def test_raise_if_cancelling_raises_in_a_task_being_cancelled() -> None:
    async def losing_the_cancellation() -> str:
        with contextlib.suppress(asyncio.CancelledError):  # what a redis-py command does now and then
            await asyncio.sleep(10)
        raise_if_cancelling()
        return "went on"

    task = asyncio.ensure_future(losing_the_cancellation())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    raise_if_cancelling()  # not cancelled here: nothing raised


async def test_a_cluster_that_is_down_is_retried_quietly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "tornado_websockets.broker_redis")
    url = f"redis://127.0.0.1:{free_port()}/0?cluster=1"  # nothing listens there
    broker = RedisClusterBroker(url, retry_base=0.01, retry_cap=0.05, timeout=1, presence=False)
    await broker.start(lambda envelope: None)
    try:
        await wait_until(lambda: broker.state == UNREACHABLE)
        await wait_until(lambda: sum("Reconnecting" in r.getMessage() for r in caplog.records) >= 3)
    finally:
        await broker.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    unreachable = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # the first attempt's warning; the next ones are INFO


def test_the_connection_and_shared_recovery_replies_import_without_the_redis_extra() -> None:
    # The connection reads shared recovery's replies (redis.replay, through recovery_redis): an
    # install without the extra must still import it. None in sys.modules fails `import redis`.
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import tornado_websockets.websockethandler, tornado_websockets.redis.replay\n"
        "import tornado_websockets.recovery_redis, tornado_websockets.redis.common\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
