"""Django's ``close_old_connections``, minus the connections it could never close.

Worker threads close stale database connections around each call, as Django does around
requests. Django never closes an in-memory SQLite connection (its ``close()`` does nothing), so
checking one only queries the database: under pytest-django, in a test without a database mark,
that check of a connection an earlier test left in the thread is refused, and a call that never
touches the database would fail. Skipping those connections changes nothing else.
"""

from __future__ import annotations

from django.db import connections

__all__ = ["close_old_connections"]


def close_old_connections() -> None:
    """Close this thread's connections that are unusable or past ``CONN_MAX_AGE``."""
    for connection in connections.all(initialized_only=True):
        in_memory = getattr(connection, "is_in_memory_db", None)  # SQLite's wrapper only
        if in_memory is not None and in_memory():
            continue  # never closed by Django: nothing to do, and checking it queries the database
        connection.close_if_unusable_or_obsolete()
