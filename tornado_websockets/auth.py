"""The Django user and session of a connection, read from the upgrade request's session cookie.

Run as the connect hook (before guards) and off the event loop, since sessions and users come
from the database: ``socket.session``, ``socket.user`` (``AnonymousUser`` without a session) and
``socket.user_id`` (the user's pk, for per-user state and presence). A signed-in socket's session
is then re-validated every ``TORNADO['session_check_interval']`` seconds (see
`tornado_websockets.revalidation`).
"""

from __future__ import annotations

import asyncio
from importlib import import_module
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user

from tornado_websockets import revalidation
from tornado_websockets.conf import tornado_settings
from tornado_websockets.dbconnections import close_old_connections

if TYPE_CHECKING:
    from tornado_websockets.websockethandler import WebSocketHandler

__all__ = ["load_user", "load_user_sync"]


def load_user_sync(session_key: str | None) -> tuple[Any, Any]:
    """The session and the user for a session key (in a worker thread)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not session_key:
        return _anonymous()
    close_old_connections()
    try:
        session = store(session_key)
        user = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
        return session, user
    finally:
        close_old_connections()


def _anonymous() -> tuple[Any, Any]:
    """An empty session and ``AnonymousUser``: no query, so no thread and no database access.

    A test that never touches the database then needs no database mark (pytest-django blocks
    even the check of a connection another test left open in a worker thread).
    """
    from django.contrib.auth.models import AnonymousUser

    return import_module(settings.SESSION_ENGINE).SessionStore(None), AnonymousUser()


async def load_user(socket: WebSocketHandler) -> None:
    """Connect hook: set ``socket.session``, ``socket.user`` and ``socket.user_id``."""
    key = socket.get_cookie(settings.SESSION_COOKIE_NAME)
    if key:
        loop = asyncio.get_running_loop()
        # The connect pool, not the event functions': an upgrade never waits for slow functions.
        executor = socket.runtime.get_connect_executor()
        session, user = await loop.run_in_executor(executor, load_user_sync, key)
    else:
        session, user = _anonymous()
    socket.session = session
    socket.user = user
    if user.is_authenticated:
        socket.user_id = user.pk
        revalidation.watch(tornado_settings().session_check_interval, socket.runtime)
