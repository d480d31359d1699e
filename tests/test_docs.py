"""Every Python sample of the docs and the README runs here, so the docs cannot rot.

The samples of one page run in order, in one fresh interpreter (they may build on each other, as
a reader would type them). A page opts into Django with the comment ``.. doc-setup: django``.
Blocks of other languages (shell, JavaScript, nginx, ini) are not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*ROOT.joinpath("docs").glob("*.rst"), ROOT / "README.rst"])
BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)\.\. code-block:: python\s*\n"  # the directive
    r"((?:(?P=indent)[ \t]+:.*\n)*)\n"  # its options, then a blank line
    r"(?P<body>(?:(?:(?P=indent)[ \t]+.*)?\n)+)",  # the indented body, blank lines included
    re.M,
)

# Runs the page, then every `test_*` function it defined (awaited if async), as pytest would.
RUNNER = """
import asyncio, inspect, runpy
namespace = runpy.run_path({script!r}, run_name="docs_sample")
for name, function in list(namespace.items()):
    if name.startswith("test_") and callable(function):
        result = function()
        if inspect.iscoroutine(result):
            asyncio.run(result)
"""

DJANGO_SETUP = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_settings")
django.setup()
"""


def samples(page: Path) -> list[str]:
    return [textwrap.dedent(match["body"]) for match in BLOCK.finditer(page.read_text())]


def test_pages_have_samples_to_run() -> None:
    counted = {page.name: len(samples(page)) for page in PAGES}
    assert sum(counted.values()) >= 10, counted


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_samples_run(page: Path, tmp_path: Path) -> None:
    blocks = samples(page)
    if not blocks:
        return
    header = DJANGO_SETUP if ".. doc-setup: django" in page.read_text() else ""
    script = tmp_path / "samples.py"
    parts = [header]
    for number, block in enumerate(blocks, 1):
        parts.append(f"# --- sample {number} of {page.name}\n{block}")
    script.write_text("\n".join(parts))
    result = subprocess.run(
        # Not as __main__: a sample's `if __name__ == "__main__": TornadoWrapper.run()` stays off.
        [sys.executable, "-c", RUNNER.format(script=str(script))],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{page.name} samples failed:\n{result.stdout}\n{result.stderr}"
