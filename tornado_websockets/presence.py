"""Presence: who is connected to a path or a room, and ``joined`` / ``left`` events once per user.

`WebSocket.presence` answers across every process of the backplane (this process alone with the
in-process broker); `WebSocket.presence_sync` is the same for Django views and other threads.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from tornado_websockets import protocol

__all__ = ["JOINED_EVENT", "LEFT_EVENT", "Member", "Presence", "identity", "member_of"]

#: Sent to a room when a user's first connection joins it (with ``presence_events=True``).
JOINED_EVENT = protocol.JOINED_EVENT
#: Sent to a room when a user's last connection leaves it.
LEFT_EVENT = protocol.LEFT_EVENT


@dataclass(frozen=True, slots=True)
class Member:
    """One connection: its id, its user (None when anonymous) and the user's display name."""

    connection: str
    user: Hashable | None
    name: str | None
    process: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"connection": self.connection, "user": self.user, "name": self.name, "process": self.process}


@dataclass(frozen=True, slots=True)
class Presence:
    """The members of a path or a room, in every process asked."""

    members: tuple[Member, ...]

    @property
    def connections(self) -> int:
        """How many connections."""
        return len(self.members)

    @property
    def users(self) -> dict[Hashable, list[str]]:
        """Known users and their connection ids (a user with three tabs has three)."""
        users: dict[Hashable, list[str]] = {}
        for member in self.members:
            if member.user is not None:
                users.setdefault(member.user, []).append(member.connection)
        return users

    @property
    def anonymous(self) -> int:
        """Connections with no known user."""
        return sum(member.user is None for member in self.members)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: counts and members."""
        return {
            "connections": self.connections,
            "users": len(self.users),
            "anonymous": self.anonymous,
            "members": [member.as_dict() for member in self.members],
        }


def identity(socket: Any) -> Hashable:
    """Who a connection counts as for ``joined``/``left``: its user, or itself when anonymous."""
    user = socket.user_id
    return ("connection", socket.id) if user is None else ("user", user)


def display_name(socket: Any) -> str | None:
    """The Django user's username when there is one, else the user id as text, else None."""
    user = getattr(socket, "user", None)
    get_username = getattr(user, "get_username", None)
    if get_username is not None and getattr(user, "is_authenticated", False):
        return str(get_username())
    return None if socket.user_id is None else str(socket.user_id)


def member_of(socket: Any, process: str) -> Member:
    """The `Member` a connection is."""
    return Member(socket.id, socket.user_id, display_name(socket), process)


def members(sockets: Iterable[Any], process: str) -> tuple[Member, ...]:
    """The members of some connections."""
    return tuple(member_of(socket, process) for socket in sockets)
