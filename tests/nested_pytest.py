"""Run a user's own test file with pytest in a folder of its own, as users run their suites."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["run_pytest"]

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(folder: Path, test_file: str, django_settings: str) -> subprocess.CompletedProcess[str]:
    """``pytest -v test_file`` in ``folder`` with pytest-django's ``--ds=django_settings`` and
    pytest-asyncio in auto mode, the repository importable; never raises on failure."""
    options = ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"]
    arguments = [test_file, "-v", "-p", "no:cacheprovider", "--rootdir", ".", f"--ds={django_settings}"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *arguments, *options],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
