"""A session's sockets end with the session, in every server process.

Two Django events end what a socket opened with a session may do:

- ``user_logged_out``: the sockets of that session are closed;
- a save of a user whose session auth hash changed (a new password): the user's sockets whose
  session holds another hash are closed, as Django's ``get_user`` would sign those sessions out
  on their next request. A session kept valid with ``update_session_auth_hash`` gets a new key,
  so its old sockets close too: the page connects again with its new cookie.

They are closed with `~tornado_websockets.limits.SESSION_ENDED_CLOSE_CODE` (4001, "Signed out"),
after which the JavaScript client does not reconnect. The process where the event happens closes
its own sockets, then asks every other one through the backplane (a control envelope of kind
`CONTROL_KIND`). Only digests travel: a session key is a bearer credential and never leaves the
process that received it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from tornado_websockets import codec
from tornado_websockets.broker import Envelope, on_control
from tornado_websockets.limits import SESSION_ENDED_CLOSE_CODE
from tornado_websockets.tornadowrapper import TornadoWrapper

__all__ = ["CLOSE_REASON", "CONTROL_KIND", "connect_signals", "end_session", "end_stale_sessions"]

logger = logging.getLogger(__name__)

#: The kind of the control envelopes that close sessions' sockets in other processes.
CONTROL_KIND = "sessions.close"
#: The close reason sent with `~tornado_websockets.limits.SESSION_ENDED_CLOSE_CODE`.
CLOSE_REASON = "Signed out"
#: The envelope path of the control messages: no WebSocket has it, no stream recovers it.
_CONTROL_PATH = ""


def digest(secret: str) -> str:
    """A one-way digest of a session key or an auth hash, for matching without revealing it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def end_session(session_key: str | None) -> None:
    """Close the sockets opened with the session ``session_key``, in every process. Any thread."""
    if session_key:
        _broadcast({"session": digest(session_key)})


def end_stale_sessions(user_pk: Any, valid_hashes: Iterable[str]) -> None:
    """Close the sockets of user ``user_pk`` whose session auth hash is none of ``valid_hashes``."""
    _broadcast({"user": str(user_pk), "hashes": sorted(digest(value) for value in valid_hashes)})


def _broadcast(request: dict[str, Any]) -> None:
    frame = codec.dumps(request)
    TornadoWrapper.call_in_loop(close_matching, frame)  # this process's sockets, if it serves any
    broker = TornadoWrapper.broker
    if not broker.cross_process:
        return
    envelope = Envelope(_CONTROL_PATH, frame, origin=broker.id, control=CONTROL_KIND)
    if not TornadoWrapper.call_in_loop(broker.publish, envelope):
        broker.publish_sync(envelope)  # a process without a server loop: a worker, a command


def close_matching(frame: bytes) -> None:
    """Close this process's sockets matched by a request of `_broadcast` (on the loop)."""
    try:
        request = codec.loads(frame)
        session, user, hashes = request.get("session"), request.get("user"), request.get("hashes")
    except (ValueError, TypeError, AttributeError):
        logger.warning("Ignoring a malformed %s control message", CONTROL_KIND)
        return
    closed = 0
    for socket in TornadoWrapper.live_connections():
        stored = getattr(socket, "session", None)
        if stored is None or socket.is_closed:
            continue
        if session is not None:
            match = stored.session_key is not None and digest(stored.session_key) == session
        else:
            match = user is not None and _stale(socket, stored, str(user), set(hashes or ()))
        if match:
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
    if created or (update_fields is not None and "password" not in update_fields):
        return  # a new user has no socket; update_last_login and the like change no password
    if not hasattr(instance, "get_session_auth_hash"):
        return
    end_stale_sessions(instance.pk, _valid_hashes(instance))


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
    """Listen to Django's logout and user saves; done by the app's ``ready()``."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.signals import user_logged_out
    from django.db.models.signals import post_save

    user_logged_out.connect(_logged_out, dispatch_uid="tornado_websockets.sessions.logged_out")
    post_save.connect(_user_saved, sender=get_user_model(), dispatch_uid="tornado_websockets.sessions.saved")


on_control(CONTROL_KIND, close_matching)
