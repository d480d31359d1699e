"""Sphinx configuration: `make docs` builds this site with warnings as errors."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tornado_websockets

project = "django-tornado-websockets"
author = "django-tornado-websockets contributors"
copyright = "2026, " + author  # noqa: A001 - Sphinx's own name
release = tornado_websockets.__version__
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx", "sphinx.ext.viewcode", "myst_parser"]
html_theme = "furo"
html_title = "django-tornado-websockets"
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# The site is built offline (CI has no network): no inventories are fetched, references to
# Tornado and Django classes render as plain text.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
nitpicky = False
default_role = "any"
suppress_warnings = ["ref.any"]
