"""Gate tests on outside programs: skip locally when missing, fail in CI (where CI=true is set)."""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["require_binary"]


def _strict() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"} or bool(os.environ.get("TWS_REQUIRE_ALL"))


def require_binary(name: str, install_hint: str) -> str:
    """The path of ``name``; when it is missing, skip (locally) or fail (in CI) with ``install_hint``."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({install_hint})"
        if _strict():
            pytest.fail(message + "; CI requires it.")
        pytest.skip(message)
    return path
