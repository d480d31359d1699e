"""Django settings for the test suite: SQLite, sessions, auth, and a test app with a websockets module."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SECRET_KEY = "tests-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", ".example.test"]
CSRF_TRUSTED_ORIGINS = ["https://*.trusted.test"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "tornado_websockets",
    "tests.djangotestapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.djangotestapp.urls"
# Files, not memory: Django never closes an in-memory SQLite connection, and event functions use
# the database from worker threads whose connections must close after each call.
_DB_DIR = Path(tempfile.gettempdir())
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_DB_DIR / f"tws-{os.getpid()}.sqlite3"),
        "TEST": {"NAME": str(_DB_DIR / f"tws-test-{os.getpid()}.sqlite3")},
    }
}
STATIC_URL = "/static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
TEMPLATES: list[dict[str, object]] = []
TORNADO = {"port": 8765, "threads": 8}
