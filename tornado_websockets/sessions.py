"""A session's sockets end with the session, in every server process: the fast path, by signals.

Django events that end what a socket opened with a session may do:

- ``user_logged_out``: the sockets of that session are closed;
- a save of a user whose session auth hash changed (a new password): the user's sockets whose
  session holds another hash are closed, as Django's ``get_user`` would sign those sessions out
  on their next request;
- a user deleted, or saved with ``is_active=False``: all the user's sockets are closed.

They are closed with `~tornado_websockets.limits.SESSION_ENDED_CLOSE_CODE` (4001, "Signed out"),
after which the JavaScript client does not reconnect. One exception: a password change made by a
request of the user's own session, which Django's ``PasswordChangeView`` keeps signed in
(``update_session_auth_hash`` gives it a new key), closes that session's sockets with
`SESSION_RENEWED_CLOSE_CODE` once the response is sent, and the client connects again at once
with its new cookie, without a word to the user.

The process where the event happens closes its own sockets, then asks every other one through the
backplane (a control envelope of kind `CONTROL_KIND`). Only digests travel: a session key is a
bearer credential and never leaves the process that received it. Whatever no signal reports
(expiry, ``clearsessions``, another process without the backplane) is caught by
`tornado_websockets.revalidation`.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tornado_websockets import codec
from tornado_websockets.broker import Envelope
from tornado_websockets.limits import SESSION_ENDED_CLOSE_CODE
from tornado_websockets.server import Server, default_server

__all__ = [
    "CLOSE_REASON",
    "CONTROL_KIND",
    "RENEWED_REASON",
    "SESSION_RENEWED_CLOSE_CODE",
    "connect_signals",
    "end_session",
    "end_stale_sessions",
]

logger = logging.getLogger(__name__)

#: The kind of the control envelopes that close sessions' sockets in other processes.
CONTROL_KIND = "sessions.close"
#: The close reason sent with `~tornado_websockets.limits.SESSION_ENDED_CLOSE_CODE`.
CLOSE_REASON = "Signed out"
#: Close code for the sockets of a session renewed by its own password change: the client
#: connects again at once (with the new cookie). Outside 4000-4099, so not final.
SESSION_RENEWED_CLOSE_CODE = 4100
#: The close reason sent with `SESSION_RENEWED_CLOSE_CODE`.
RENEWED_REASON = "Session renewed"
#: The envelope path of the control messages: no WebSocket has it, no stream recovers it.
_CONTROL_PATH = ""

#: Session keys a request of this process is renewing right now: their old key may be gone before
#: the page has its new cookie, so `tornado_websockets.revalidation` leaves them alone meanwhile.
renewing: set[str] = set()


@dataclass
class _Request:
    """The HTTP request this thread (or task) is serving: its session cookie, and what waits for its end."""

    session_key: str | None
    password_changes: list[tuple[Any, list[str]]] = field(default_factory=list)


_request: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "tornado_websockets_request", default=None
)


def digest(secret: str) -> str:
    """A one-way digest of a session key or an auth hash, for matching without revealing it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def end_session(session_key: str | None) -> None:
    """Close the sockets opened with the session ``session_key``, in every process. Any thread."""
    if session_key:
        _broadcast({"session": digest(session_key)})


def end_stale_sessions(user_pk: Any, valid_hashes: Iterable[str], renewed: str | None = None) -> None:
    """Close the sockets of user ``user_pk`` whose session auth hash is none of ``valid_hashes``.

    The sockets of session ``renewed`` (kept signed in with a new key) are closed with
    `SESSION_RENEWED_CLOSE_CODE` instead, so that they connect again.
    """
    request: dict[str, Any] = {
        "user": str(user_pk),
        "hashes": sorted(digest(value) for value in valid_hashes),
    }
    if renewed:
        request["renewed"] = digest(renewed)
    _broadcast(request)


def _broadcast(request: dict[str, Any]) -> None:
    server = default_server()
    frame = codec.dumps(request)
    server.call_in_loop(close_matching, frame, server)  # this process's sockets, if it serves any
    broker = server.broker
    if not broker.cross_process:
        return
    envelope = Envelope(_CONTROL_PATH, frame, origin=broker.id, control=CONTROL_KIND)
    if not server.call_in_loop(broker.publish, envelope):
        broker.publish_sync(envelope)  # a process without a server loop: a worker, a command


def listen(server: Server) -> None:
    """Let ``server`` close its sockets when another process ends their session (on its backplane)."""
    server.on_control(CONTROL_KIND, lambda frame: close_matching(frame, server))


def close_matching(frame: bytes, server: Server | None = None) -> None:
    """Close the sockets of ``server`` (the default) matched by a request of `_broadcast` (on the loop)."""
    try:
        request = codec.loads(frame)
        session, user, hashes = request.get("session"), request.get("user"), request.get("hashes")
        renewed = request.get("renewed")
    except (ValueError, TypeError, AttributeError):
        logger.warning("Ignoring a malformed %s control message", CONTROL_KIND)
        return
    closed = 0
    for socket in (server if server is not None else default_server()).live_connections():
        stored = getattr(socket, "session", None)
        if stored is None or socket.is_closed:
            continue
        if session is not None:
            match = stored.session_key is not None and digest(stored.session_key) == session
        else:
            match = user is not None and _stale(socket, stored, str(user), set(hashes or ()))
        if not match:
            continue
        if renewed is not None and stored.session_key is not None and digest(stored.session_key) == renewed:
            socket.close(SESSION_RENEWED_CLOSE_CODE, RENEWED_REASON)
        else:
            socket.close(SESSION_ENDED_CLOSE_CODE, CLOSE_REASON)
        closed += 1
    if closed:
        logger.info("Closed %d socket(s) of an ended session", closed)


def _stale(socket: Any, session: Any, user: str, valid: set[str]) -> bool:
    from django.contrib.auth import HASH_SESSION_KEY

    if socket.user is None or not socket.user.is_authenticated or str(socket.user.pk) != user:
        return False
    # Read from the session loaded (in a worker thread) when the socket connected: no query here.
    stored_hash = session.get(HASH_SESSION_KEY)
    return not stored_hash or digest(stored_hash) not in valid


def _logged_out(sender: Any, request: Any = None, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    end_session(getattr(session, "session_key", None))


def _user_saved(
    sender: Any, instance: Any, update_fields: Any = None, created: bool = False, **kwargs: Any
) -> None:
    if created or (update_fields is not None and not {"password", "is_active"} & set(update_fields)):
        return  # a new user has no socket; update_last_login and the like change no password
    if not hasattr(instance, "get_session_auth_hash"):
        return
    if getattr(instance, "is_active", True) is False:
        end_stale_sessions(instance.pk, [])  # no session of an inactive user signs in
        return
    hashes = _valid_hashes(instance)
    request = _request.get()
    if request is not None and request.session_key:
        # Maybe the user's own session, about to be kept signed in: decided once the response is out.
        renewing.add(request.session_key)
        request.password_changes.append((instance.pk, hashes))
        return
    end_stale_sessions(instance.pk, hashes)


def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    end_stale_sessions(instance.pk, [])


def _request_started(sender: Any, environ: Any = None, scope: Any = None, **kwargs: Any) -> None:
    """Remember the session cookie of the request this thread serves (WSGI ``environ`` or ASGI ``scope``)."""
    from django.conf import settings
    from django.http.cookie import parse_cookie

    header = ""
    if environ is not None:
        header = environ.get("HTTP_COOKIE", "")
    elif scope is not None:
        header = b"; ".join(value for name, value in scope.get("headers", ()) if name == b"cookie").decode(
            "latin-1"
        )
    _request.set(_Request(parse_cookie(header).get(settings.SESSION_COOKIE_NAME)))


def _request_finished(sender: Any, **kwargs: Any) -> None:
    """The response is out: close the sockets of the password changes this request made.

    The request's own session gets `SESSION_RENEWED_CLOSE_CODE` if it was renewed (its old key is
    gone: ``update_session_auth_hash`` cycled it) and its page comes back with the new cookie;
    had it stayed (a view that changes the password without keeping the session), it is signed
    out like the others.
    """
    request = _request.get()
    _request.set(None)
    if request is None or not request.password_changes or not request.session_key:
        return
    key = request.session_key
    try:
        renewed = key if not _session_exists(key) else None
        for user_pk, hashes in request.password_changes:
            end_stale_sessions(user_pk, hashes, renewed=renewed)
    finally:
        renewing.discard(key)


def _session_exists(session_key: str) -> bool:
    from importlib import import_module

    from django.conf import settings

    return bool(import_module(settings.SESSION_ENGINE).SessionStore().exists(session_key))


def _valid_hashes(user: Any) -> list[str]:
    """The auth hashes Django's ``get_user`` accepts for ``user``: SECRET_KEY's, then the fallbacks'."""
    from django.conf import settings

    hashes = [user.get_session_auth_hash()]
    fallbacks = getattr(user, "get_session_auth_fallback_hash", None)
    if fallbacks is not None:  # Django 5.x
        hashes.extend(fallbacks())
    elif hasattr(user, "_get_session_auth_hash"):  # Django 4.2
        hashes.extend(user._get_session_auth_hash(secret=key) for key in settings.SECRET_KEY_FALLBACKS)
    return hashes


def connect_signals() -> None:
    """Listen to Django's logout, user saves and deletes, and requests; done by the app's ``ready()``."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.signals import user_logged_out
    from django.core.signals import request_finished, request_started
    from django.db.models.signals import post_delete, post_save

    user = get_user_model()
    user_logged_out.connect(_logged_out, dispatch_uid="tornado_websockets.sessions.logged_out")
    post_save.connect(_user_saved, sender=user, dispatch_uid="tornado_websockets.sessions.saved")
    post_delete.connect(_user_deleted, sender=user, dispatch_uid="tornado_websockets.sessions.deleted")
    request_started.connect(_request_started, dispatch_uid="tornado_websockets.sessions.request_started")
    request_finished.connect(_request_finished, dispatch_uid="tornado_websockets.sessions.request_finished")
