"""``manage.py websocket_schema``: the AsyncAPI 3.0 document of every registered WebSocket, as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tornado_websockets import asyncapi


class Command(BaseCommand):
    """Print `tornado_websockets.asyncapi.document` of the project's WebSockets to stdout."""

    help = (
        "Print the AsyncAPI 3.0 document of every WebSocket registered by the apps' websockets "
        "modules: paths, events both ways, payload schemas and descriptions."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Django's parser, letting ``--version`` name the document's version, not Django's."""
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        """``--indent``, ``--title`` and ``--version``."""
        parser.add_argument("--indent", type=int, default=2, help="JSON indentation; 0 for one line.")
        parser.add_argument("--title", default="WebSocket API", help="The document's info.title.")
        parser.add_argument("--version", dest="api_version", default="1.0.0", help="Its info.version.")

    def handle(self, *args: Any, **options: Any) -> None:
        """Write the document, sorted by key so that two runs can be diffed."""
        document = asyncapi.document(title=options["title"], version=options["api_version"])
        indent = options["indent"] or None
        self.stdout.write(
            json.dumps(document, indent=indent, sort_keys=True, ensure_ascii=False, allow_nan=False)
        )
