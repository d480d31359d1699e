"""Re-validate the sessions of open sockets, so that a session's end reaches them however it ends.

Django's signals (see `tornado_websockets.sessions`) only fire in the process where something
happens, and only reach other processes through a Redis backplane. A session can also end with
no signal at all: it expires, ``clearsessions`` deletes it, ``session.flush()`` runs without a
logout, the user is deleted or made inactive, or the session store is changed directly.

So every ``TORNADO['session_check_interval']`` seconds each server loop re-reads, off the loop,
the session of every signed-in socket and asks Django's ``get_user`` who it belongs to, as the
next HTTP request of that session would. One read per session, however many sockets it has. A
socket whose session no longer signs its user in is closed with
`~tornado_websockets.limits.SESSION_ENDED_CLOSE_CODE`. Signals stay the fast path; this is the
bound: a socket acts for an ended session at most about one interval after it ended.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import defaultdict
from collections.abc import Iterable
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from tornado_websockets import sessions
from tornado_websockets.limits import SESSION_ENDED_CLOSE_CODE
from tornado_websockets.server import Server, default_server

__all__ = ["BATCH", "DEFAULT_INTERVAL", "check_now", "stale_sessions", "watch"]

logger = logging.getLogger(__name__)

#: Seconds between two checks of a session, unless ``TORNADO['session_check_interval']`` says otherwise.
DEFAULT_INTERVAL = 30.0
#: Sessions read by one call in a worker thread: many sessions never hold one worker for long.
BATCH = 100

#: Per event loop, the task that checks that loop's sockets (at most one per loop).
_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


def session_user(session_key: str) -> Any:
    """The pk of the user the session ``session_key`` signs in now, or None (in a worker thread).

    Django's ``get_user``: the session exists and has not expired, its user exists and may sign
    in (``is_active`` for the model backend), and its auth hash is the user's (a new password
    signs the other sessions out; ``get_user`` then flushes that session, as the next request
    would).
    """
    from django.conf import settings
    from django.contrib.auth import get_user

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=store))  # type: ignore[arg-type]
    return user.pk if user.is_authenticated else None


def stale_sessions(sessions: Iterable[tuple[str, str]]) -> set[str]:
    """The keys among ``(session key, user pk as str)`` pairs that no longer sign that user in."""
    from tornado_websockets.dbconnections import close_old_connections

    close_old_connections()
    try:
        stale = set()
        for key, user_pk in sessions:
            try:
                now = session_user(key)
            except Exception:  # a store that is down is no proof the session ended
                logger.exception("Could not re-validate a session; its sockets stay open")
                continue
            if now is None or str(now) != user_pk:
                stale.add(key)
        return stale
    finally:
        close_old_connections()


def watch(interval: float, server: Server) -> None:
    """Make sure this loop re-validates ``server``'s signed-in sockets every ``interval`` seconds
    (on the loop)."""
    loop = asyncio.get_running_loop()
    task = _watchers.get(loop)
    if task is None or task.done():
        _watchers[loop] = loop.create_task(_run(interval, server), name="tornado_websockets.revalidation")


async def _run(interval: float, server: Server) -> None:
    """Check every ``interval`` seconds while signed-in sockets remain; then stop (watch() restarts)."""
    while True:
        await asyncio.sleep(interval)
        if not await check_now(server):
            return


def _signed_in(sockets: Iterable[Any]) -> dict[tuple[str, str], list[Any]]:
    """This loop's open signed-in sockets, grouped by (session key, user pk)."""
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for socket in sockets:
        session, user = getattr(socket, "session", None), getattr(socket, "user", None)
        key = getattr(session, "session_key", None)
        if socket.is_closed or not key or user is None or not user.is_authenticated:
            continue
        groups[key, str(user.pk)].append(socket)
    return groups


async def check_now(server: Server | None = None) -> int:
    """Re-validate the sessions of this process's signed-in sockets now; how many sessions were checked.

    Sockets of a stale session are closed with 4001. Sessions are read in batches of `BATCH` in
    worker threads, never on the loop.
    """
    server = server if server is not None else default_server()
    groups = _signed_in(server.live_connections())
    pending = [pair for pair in groups if pair[0] not in sessions.renewing]
    loop = asyncio.get_running_loop()
    closed = 0
    for start in range(0, len(pending), BATCH):
        batch = pending[start : start + BATCH]
        stale = await loop.run_in_executor(server.get_executor(), stale_sessions, batch)
        for pair in batch:
            if pair[0] not in stale or pair[0] in sessions.renewing:
                continue
            for socket in groups[pair]:
                if not socket.is_closed:
                    socket.close(SESSION_ENDED_CLOSE_CODE, sessions.CLOSE_REASON)
                    closed += 1
    if closed:
        logger.info("Closed %d socket(s) whose session ended", closed)
    return len(groups)
