"""Generate the classic script ``client.js`` (UMD: global, AMD, CommonJS) from the ES module ``client.mjs``.

``python tools/build_js.py`` writes it (``make js``); ``--check`` only says whether it is up to date.
No bundler: the module's body is wrapped as it is, so the two builds cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["CLASSIC", "EXPORTS_MARKER", "MODULE", "build"]

STATIC = Path(__file__).resolve().parent.parent / "tornado_websockets" / "static" / "tornado_websockets"
MODULE = STATIC / "client.mjs"
CLASSIC = STATIC / "client.js"

#: The line of client.mjs after which only its ``export`` statements follow.
EXPORTS_MARKER = "// ES module exports:"

HEADER = """\
// Generated from client.mjs by tools/build_js.py (make js): edit client.mjs, not this file.
(function (root, factory) {
  if (typeof define === "function" && define.amd) {
    define([], factory);
  } else if (typeof module === "object" && module.exports) {
    module.exports = factory();
  } else {
    root.TornadoWebSocket = factory();
  }
})(typeof globalThis !== "undefined" ? globalThis : this, function () {
  "use strict";

"""

FOOTER = """
  return TornadoWebSocket;
});
"""


def build(source: str) -> str:
    """The text of client.js for the text of client.mjs."""
    body, marker, _ = source.partition(EXPORTS_MARKER)
    if not marker:
        raise ValueError(f"client.mjs lacks the line {EXPORTS_MARKER!r} that starts its exports.")
    lines = body.rstrip().splitlines()
    indented = "\n".join(f"  {line}" if line else "" for line in lines)
    return HEADER + indented + "\n" + FOOTER


def main(argv: list[str] | None = None) -> int:
    """Write client.js, or with ``--check`` exit 1 when it differs from what client.mjs gives."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that client.js is up to date")
    arguments = parser.parse_args(argv)
    expected = build(MODULE.read_text(encoding="utf-8"))
    if arguments.check:
        if CLASSIC.read_text(encoding="utf-8") != expected:
            sys.stderr.write(f"{CLASSIC} is out of date: run make js\n")
            return 1
        return 0
    CLASSIC.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
