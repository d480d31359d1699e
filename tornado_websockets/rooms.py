"""Room membership bookkeeping: which members are in which rooms, and the reverse.

Pure data: members are any hashable objects (connections, in practice), so it is tested alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["Rooms"]

M = TypeVar("M", bound=Hashable)


class Rooms(Generic[M]):
    """Rooms of one `WebSocket`: a room exists while it has members."""

    def __init__(self) -> None:
        self._members: dict[str, dict[M, None]] = {}  # a dict keeps join order, unlike a set
        self._rooms: dict[M, set[str]] = {}

    def __repr__(self) -> str:
        return f"<Rooms { ({room: len(members) for room, members in self._members.items()})!r}>"

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._members))

    def __contains__(self, room: object) -> bool:
        return room in self._members

    def join(self, room: str, member: M) -> None:
        """Add ``member`` to ``room``; joining twice is harmless."""
        if not isinstance(room, str) or not room:
            raise TypeError(f"A room name should be a non-empty str, not {room!r}.")
        self._members.setdefault(room, {})[member] = None
        self._rooms.setdefault(member, set()).add(room)

    def leave(self, room: str, member: M) -> None:
        """Remove ``member`` from ``room``; leaving a room one is not in is harmless."""
        members = self._members.get(room)
        if members is None or member not in members:
            return
        del members[member]
        if not members:
            del self._members[room]
        rooms = self._rooms[member]
        rooms.discard(room)
        if not rooms:
            del self._rooms[member]

    def leave_all(self, member: M) -> set[str]:
        """Remove ``member`` from every room; returns the rooms it was in."""
        rooms = self._rooms.pop(member, set())
        for room in rooms:
            members = self._members[room]
            del members[member]
            if not members:
                del self._members[room]
        return rooms

    def members(self, room: str) -> tuple[M, ...]:
        """The members of ``room`` in join order (empty if the room does not exist)."""
        return tuple(self._members.get(room, ()))

    def rooms_of(self, member: M) -> frozenset[str]:
        """The rooms ``member`` is in."""
        return frozenset(self._rooms.get(member, ()))
