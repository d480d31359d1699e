"""Benchmark harness: this library beside raw Tornado, python-socketio and Django Channels.

Run it with ``make bench`` (full) or ``make bench-quick``; see ``bench/README.md``. Nothing here is
imported by the package, and the peers are installed only into ``bench/.venv``.
"""
