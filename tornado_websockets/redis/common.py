"""What every part of the Redis backplane shares and needs no Redis client for: replies as text,
cancellation, backoff, URLs. Imports nothing of redis-py, so that the connection (which reads
shared recovery's replies) imports without the ``redis`` extra."""

from __future__ import annotations

import asyncio
import random
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["backoff_delay", "raise_if_cancelling", "redacted", "split_url", "text"]


def text(value: bytes | str) -> str:
    """A Redis reply as ``str`` (replies are ``bytes`` unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else value


def raise_if_cancelling() -> None:
    """Raise `asyncio.CancelledError` if the running task was cancelled during an await that lost it.

    A redis-py command (seen with redis 8.1 on Python 3.11) may return normally although the task
    was cancelled while it ran. A loop going on after that would never end, nor would the server's
    graceful shutdown waiting for it; call this after each command.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before reconnection attempt ``attempt`` (0 for the first): ``base * 2**attempt``.

    Capped at ``cap``, with half of it random ("equal jitter"), so processes that lost Redis at
    the same moment do not all come back at the same instant.
    """
    delay = min(cap, base * 2.0 ** min(attempt, 32))
    return delay / 2 + random.uniform(0, delay / 2)


def split_url(url: str) -> tuple[str, str | None]:
    """The Redis URL without this library's ``channel`` query parameter, and that parameter."""
    base, _, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    channel = next((value for name, value in pairs if name == "channel"), None)
    if channel is None:
        return url, None
    rest = urlencode([(name, value) for name, value in pairs if name != "channel"])
    return (f"{base}?{rest}" if rest else base), channel or None


def redacted(url: str) -> str:
    """The URL with its password hidden, for logs and reprs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
