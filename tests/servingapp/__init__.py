"""A Django app served by real ``runtornado`` processes in tests/test_wsgi.py and tests/test_sessions.py."""
