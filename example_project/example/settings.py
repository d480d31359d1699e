"""Settings of the example project: SQLite, Django's auth and sessions, and ``tornado_websockets``.

The apps ``echo``, ``chat`` and ``progress`` each hold a ``websockets`` module, found at start-up.
Three environment variables exist for the tests: ``EXAMPLE_DATABASE`` (the SQLite file),
``EXAMPLE_DEBUG`` (``0`` turns DEBUG off) and ``EXAMPLE_SESSION_CHECK`` (seconds between session
checks).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-project-only-never-use-this-key-in-production"
DEBUG = os.environ.get("EXAMPLE_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",  # with tornado_websockets: the dashboard also at /admin/websockets/
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "tornado_websockets",
    "example",
    "echo",
    "chat",
    "progress",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DATABASE", BASE_DIR / "db.sqlite3"),
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True


def _local_time_zone() -> str:
    """This machine's zone (``TZ``, else /etc/localtime's name): Django's default is America/Chicago."""
    if os.environ.get("TZ", "").strip(":"):
        return os.environ["TZ"].strip(":")
    target = Path("/etc/localtime").resolve().as_posix()
    return target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else "UTC"


TIME_ZONE = _local_time_zone()

# Every line with its date, time and zone. Each request is logged once, by Tornado's access log
# (status, method, path, client, duration); Django's own "Not Found" line for the same 404 is left
# out (django.request still logs server errors, with their traceback).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"timed": {"format": "%(asctime)s %(message)s", "datefmt": "%Y-%m-%d %H:%M:%S %Z"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "timed"}},
    "loggers": {
        "tornado_websockets": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "tornado.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "tornado.application": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
STATIC_URL = "static/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# Every key is optional; ``python manage.py runtornado`` listens on this port.
TORNADO = {
    "port": 8000,
    # How often (seconds) a signed-in socket's session is read again: the longest a socket may act
    # for a session that ended where no signal reached this process (expiry, another process).
    "session_check_interval": float(os.environ.get("EXAMPLE_SESSION_CHECK", "30")),
}
