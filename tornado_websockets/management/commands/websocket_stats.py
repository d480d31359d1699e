"""``manage.py websocket_stats``: a metrics snapshot as a table (or JSON): this process's, a server's, or all.

The command runs in a process of its own, which serves no WebSocket: its own snapshot shows only
the registered paths with zero counts. Point ``--url`` at a running server's ``metrics.json``
(``tornado_websockets.urls``) to read that server's metrics instead, or pass ``--all`` for every
server process added up, read through the Redis backplane.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tornado_websockets import metrics

#: Columns of the table: heading and key of a path's snapshot.
COLUMNS = (
    ("path", "path"),
    ("conns", "connections"),
    ("users", "users"),
    ("rooms", "rooms"),
    ("in", "frames_in"),
    ("out", "frames_out"),
    ("bytes in", "bytes_in"),
    ("bytes out", "bytes_out"),
    ("errors", "handler_errors"),
    ("drops", "drops"),
    ("backlog", "backlog_bytes"),
)


def fetch(url: str, timeout: float) -> dict[str, Any]:
    """The snapshot served at ``url`` (a ``metrics.json`` URL)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = json.load(response)
    except urllib.error.HTTPError as error:
        hint = (
            " (404: is the URL right, and does TORNADO['metrics'] let it answer?)"
            if error.code == 404
            else ""
        )
        raise CommandError(f"{url} answered {error.code}{hint}") from error
    except (OSError, ValueError) as error:
        raise CommandError(f"Could not read a snapshot from {url}: {error}") from error
    if not isinstance(data, dict) or "paths" not in data:
        raise CommandError(f"{url} did not serve a metrics snapshot.")
    return data


def table(snapshot: dict[str, Any]) -> str:
    """The snapshot as a text table, one row per path, then the process and backplane lines."""
    rows = [[heading for heading, _ in COLUMNS]]
    for path, values in snapshot["paths"].items():
        row = []
        for _, key in COLUMNS:
            value = path if key == "path" else values[key]
            if key in ("rooms", "drops"):
                value = len(value) if key == "rooms" else sum(value.values())
            row.append(str(value))
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    if len(rows) == 1:
        lines.append("(no WebSocket paths)")
    for process in snapshot.get("processes", [snapshot.get("process")]):
        backplane = process.get("backplane") or snapshot["backplane"]
        lines.append(f"process {process['pid']}, backplane {backplane['kind']} ({backplane['state']})")
    lines.append(f"{snapshot['in_flight']} event functions running")
    for path, reasons in snapshot.get("drops_elsewhere", {}).items():
        lines.append(f"dropped for {path}: {reasons}")
    return "\n".join(lines)


class Command(BaseCommand):
    """Print `tornado_websockets.metrics.snapshot`, or a running server's with ``--url``."""

    help = (
        "Print WebSocket metrics as a table (or --json): this process's, or, with --url "
        "http://host:port/ws-api/metrics.json, a running server's."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """``--url``, ``--json`` and ``--timeout``."""
        parser.add_argument("--url", help="A running server's metrics.json URL.")
        parser.add_argument("--json", action="store_true", help="Print the snapshot as JSON.")
        parser.add_argument("--timeout", type=float, default=10.0, help="Seconds to wait for --url.")
        parser.add_argument(
            "--all",
            action="store_true",
            help="Every server process added up, through the backplane (TORNADO['backplane']).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Read the snapshot and print it."""
        url = options["url"]
        if options["all"]:
            try:
                snapshot = metrics.everywhere()
            except RuntimeError as error:
                raise CommandError(str(error)) from error
        else:
            snapshot = fetch(url, options["timeout"]) if url else metrics.snapshot()
        if options["json"]:
            self.stdout.write(json.dumps(snapshot, indent=2, sort_keys=True, allow_nan=False))
        else:
            self.stdout.write(table(snapshot))
