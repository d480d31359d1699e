"""Settings of the ``runtornado`` processes of tests/test_wsgi.py and tests/test_sessions.py.

``SERVING_DATABASE`` names the SQLite file (migrated by the test), ``SERVING_BACKPLANE`` a Redis
URL shared by several processes, ``SERVING_DEBUG=0`` turns DEBUG off, ``SERVING_SESSION_CHECK``
sets the session re-validation interval and ``SERVING_SESSION_CACHE`` keeps sessions in a file
cache in that directory.
"""

from __future__ import annotations

import os

from tests.django_settings import *  # noqa: F403
from tests.django_settings import DATABASES, INSTALLED_APPS

DEBUG = os.environ.get("SERVING_DEBUG", "1") != "0"
INSTALLED_APPS = [*INSTALLED_APPS, "tests.servingapp"]
ROOT_URLCONF = "tests.servingapp.views"
if "SERVING_DATABASE" in os.environ:
    DATABASES = {"default": {**DATABASES["default"], "NAME": os.environ["SERVING_DATABASE"]}}
TORNADO = {
    "port": 8765,
    "backplane": os.environ.get("SERVING_BACKPLANE"),
    "session_check_interval": float(os.environ.get("SERVING_SESSION_CHECK", "30")),
}
if "SERVING_SESSION_CACHE" in os.environ:  # sessions in a cache that other processes share (a directory)
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ["SERVING_SESSION_CACHE"],
        }
    }
if os.environ.get("SERVING_PROXY_SSL") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
