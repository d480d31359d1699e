"""What the numbers were measured on: recorded with every run."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "describe"]

#: Distributions whose versions matter to the figures.
PACKAGES = (
    "django-tornado-websockets",
    "tornado",
    "orjson",
    "python-socketio",
    "python-engineio",
    "aiohttp",
    "websockets",
    "uvloop",
    "channels",
    "daphne",
    "Django",
    "Twisted",
    "channels-redis",
    "redis",
    "picows",
    "psutil",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        import psutil
    except ImportError:
        return float("nan")
    return round(float(psutil.virtual_memory().total) / 2**30, 1)


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def describe() -> dict[str, Any]:
    """Cores, CPU, memory, OS, Python, package versions, our JSON codec and the commit measured."""
    try:
        from tornado_websockets import codec

        backend = codec.BACKEND
    except ImportError:
        backend = "unknown"
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "packages": {name: _version(name) for name in PACKAGES},
        "our_codec": backend,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "worktree_dirty": _git("status", "--porcelain", "--untracked-files=no", "tornado_websockets") != "",
    }
