"""The Redis backplane's old import path: see `tornado_websockets.redis.broker` and its parts."""

from __future__ import annotations

from tornado_websockets.redis.broker import (
    CONNECTED,
    CONNECTING,
    DEFAULT_CHANNEL,
    IDLE,
    STOPPED,
    UNREACHABLE,
    RedisBroker,
)
from tornado_websockets.redis.client import CONNECTION_ERRORS as _CONNECTION_ERRORS
from tornado_websockets.redis.client import close_pubsub, until_one_fails
from tornado_websockets.redis.common import backoff_delay, split_url
from tornado_websockets.redis.common import raise_if_cancelling as _deliver_cancellation
from tornado_websockets.redis.common import redacted as _redacted
from tornado_websockets.redis.recovery import stored_envelope as _stored_envelope

__all__ = [
    "CONNECTED",
    "CONNECTING",
    "DEFAULT_CHANNEL",
    "IDLE",
    "STOPPED",
    "UNREACHABLE",
    "_CONNECTION_ERRORS",
    "RedisBroker",
    "_deliver_cancellation",
    "_redacted",
    "_stored_envelope",
    "backoff_delay",
    "close_pubsub",
    "split_url",
    "until_one_fails",
]
