"""Run the Channels peer on daphne, through daphne's own command line, as it is deployed.

Verbosity 0: no access log, which would otherwise write a line per connection.
"""

from __future__ import annotations

import os

from bench.servers.options import parse_options

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM."""
    options = parse_options(__doc__ or "", argv)
    if options.redis is not None:
        os.environ["BENCH_REDIS_URL"] = options.redis
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(
        ["-b", options.host, "-p", str(options.port), "-v", "0", "bench.servers.channels_app:application"]
    )


if __name__ == "__main__":
    main()
