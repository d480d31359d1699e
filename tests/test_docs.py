"""Every Python sample of the docs and the README runs here, so the docs cannot rot.

The samples of one page run in order, in one fresh interpreter (they may build on each other, as
a reader would type them). A page opts into Django with the comment ``.. doc-setup: django``, and
into pytest-django (its tests then run as a user's would, database marks and all) with
``.. doc-setup: django pytest``.
Blocks of other languages (shell, JavaScript, nginx, ini) are not run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tornado.web

from tests.nested_pytest import run_pytest
from tests.servers import connect_when_up, finished, free_port, running

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*ROOT.joinpath("docs").glob("*.rst"), ROOT / "README.rst"])
BLOCK = (
    r"^(?P<indent>[ \t]*)\.\. code-block:: {language}\s*\n"  # the directive
    r"((?:(?P=indent)[ \t]+:.*\n)*)\n"  # its options, then a blank line
    r"(?P<body>(?:(?:(?P=indent)[ \t]+.*)?\n)+)"  # the indented body, blank lines included
)

# Runs the page, then every `test_*` function it defined (awaited if async) and every unittest
# TestCase class it defined (Tornado's AsyncHTTPTestCase among them), as pytest would.
RUNNER = """
import asyncio, inspect, runpy, unittest
namespace = runpy.run_path({script!r}, run_name="docs_sample")
for name, function in list(namespace.items()):
    if name.startswith("test_") and callable(function) and not isinstance(function, type):
        result = function()
        if inspect.iscoroutine(result):
            asyncio.run(result)
for name, case in list(namespace.items()):
    if isinstance(case, type) and issubclass(case, unittest.TestCase) and case.__module__ == "docs_sample":
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
        outcome = unittest.TextTestRunner(verbosity=2).run(suite)
        assert outcome.wasSuccessful() and outcome.testsRun, name
"""

DJANGO_SETUP = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_settings")
django.setup()
"""


# Runs a script as `python chat.py` does (as __main__), on a free port instead of its 8000.
SCRIPT_RUNNER = """
import runpy, sys
from tornado_websockets.tornadowrapper import TornadoWrapper
run = TornadoWrapper.run
TornadoWrapper.run = lambda port, *args, **kwargs: run(int(sys.argv[2]), *args, **kwargs)
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def samples(page: Path, language: str = "python") -> list[str]:
    block = re.compile(BLOCK.format(language=re.escape(language)), re.M)
    return [textwrap.dedent(match["body"]) for match in block.finditer(page.read_text())]


#: The first line of a sample that is a project's file: "# lobby/views.py", "{# lobby/templates/x.html #}".
FILE_NAME = re.compile(r"^(?:# (?P<python>[\w/]+\.py)\b|\{# (?P<template>[\w/.]+\.html) #\})")


def write_module(folder: Path, block: str) -> Path | None:
    """Write a sample that names its file (``# lobby/views.py``) there, in packages; return its path."""
    match = FILE_NAME.match(block)
    if match is None:
        return None
    path = folder / (match["python"] or match["template"])
    path.parent.mkdir(parents=True, exist_ok=True)
    if match["python"]:
        for package in path.relative_to(folder).parents:
            if package != Path("."):
                (folder / package / "__init__.py").touch()
    path.write_text(block)
    return path


def test_pages_have_samples_to_run() -> None:
    counted = {page.name: len(samples(page)) for page in PAGES}
    assert sum(counted.values()) >= 10, counted


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_samples_run(page: Path, tmp_path: Path) -> None:
    blocks = samples(page)
    if not blocks:
        return
    text = page.read_text()
    if ".. doc-setup: django pytest" in text:
        run_under_pytest_django(page, blocks, tmp_path)
        return
    header = DJANGO_SETUP if ".. doc-setup: django" in text else ""
    script = tmp_path / "samples.py"
    parts = [header]
    for number, block in enumerate(blocks, 1):
        parts.append(f"# --- sample {number} of {page.name}\n{block}")
        write_module(tmp_path, block)  # so that `from lobby.views import lobby_page` finds it
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


PAGE_SETTINGS = """
from tests.django_settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
"""


def run_under_pytest_django(page: Path, blocks: list[str], tmp_path: Path) -> None:
    """Run a page's samples as one pytest module, with pytest-django and pytest-asyncio.

    The settings are a fresh ``startproject``'s in what matters: a file database, so pytest-django
    tests on SQLite in memory, whose connections Django never closes (a connection a transactional
    test leaves in a worker thread then meets pytest-django's blocker in the next test).
    """
    (tmp_path / "page_settings.py").write_text(PAGE_SETTINGS)
    script = tmp_path / "test_page_samples.py"
    parts = [f"# --- sample {number} of {page.name}\n{block}" for number, block in enumerate(blocks, 1)]
    for block in blocks:
        write_module(tmp_path, block)
    script.write_text("\n".join(parts))
    result = run_pytest(tmp_path, script.name, "page_settings")
    assert result.returncode == 0, f"{page.name} samples failed:\n{result.stdout}\n{result.stderr}"
    tests = len(re.findall(r"^\s*(?:async )?def test_", "\n".join(blocks), re.M))
    assert result.stdout.count(" PASSED") == tests, result.stdout
    # The TestCase classes run with Django's own test runner too, as `manage.py test` runs them.
    cases = len(re.findall(r"^class \w+\((?:Transaction|LiveServer)?TestCase\)", "\n".join(blocks), re.M))
    if cases:
        django_runner = subprocess.run(
            [sys.executable, "-m", "django", "test", script.stem, "--settings=page_settings", "-v", "2"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = django_runner.stdout + django_runner.stderr
        assert django_runner.returncode == 0, f"{page.name} under Django's test runner:\n{output}"
        assert re.search(r"^Ran [1-9]\d* tests? ", output, re.M), output


def test_django_template_samples_render() -> None:
    from django.template.backends.django import DjangoTemplates

    engine = DjangoTemplates({"NAME": "django", "DIRS": [], "APP_DIRS": False, "OPTIONS": {}})
    templates = [template for page in PAGES for template in samples(page, "html+django")]
    assert templates  # the README's Django quick start has some
    for template in templates:
        html = engine.from_string(template).render()
        if "{% static" in template:
            assert '<script src="/static/tornado_websockets/client.js"></script>' in html


QUICK_STARTS = [ROOT / "README.rst", ROOT / "docs" / "quickstart.rst"]


@pytest.mark.parametrize("page", QUICK_STARTS, ids=[page.name for page in QUICK_STARTS])
async def test_quick_start_script_runs_as_pasted(page: Path, tmp_path: Path) -> None:
    (script,) = [block for block in samples(page) if block.startswith("# chat.py")]
    (tmp_path / "chat.py").write_text(script)
    port = free_port()
    async with running(["-c", SCRIPT_RUNNER, "chat.py", str(port)], cwd=tmp_path) as process:
        client = await connect_when_up(f"ws://127.0.0.1:{port}/ws/chat")
        await client.emit("message", {"text": "hi"})
        assert await client.wait_for("message") == {"text": "hi"}
        if "whoami" in script:
            await client.emit("whoami")
            assert await client.wait_for("you") == {"ip": "127.0.0.1"}
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert await client.wait_closed() == 1001
        output = await finished(process, 10)
    assert process.returncode == 0, output


class BlankPage(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("<!doctype html><title>quick start</title>")


def test_quick_start_javascript_talks_to_the_quick_start_server() -> None:
    """quickstart.rst's bare-browser sample, in headless Chromium, against the page's own chat.py."""
    from tests.browser import ServerThread, Tab, chromium

    page = ROOT / "docs" / "quickstart.rst"
    (server_script,) = [block for block in samples(page) if block.startswith("# chat.py")]
    (javascript,) = samples(page, "javascript")
    exec(compile(server_script, "chat.py", "exec"), {"__name__": "docs_sample"})  # registers /chat
    server = ServerThread([(r"/", BlankPage)])
    server.start()
    try:
        with chromium() as browser:
            tab = Tab.open(browser, server.url("/"))
            # Keep what the sample logs; it connects to port 8000, the test server is elsewhere.
            tab.page.add_script_tag(content="window.logged = []; console.log = (v) => logged.push(v);")
            tab.page.add_script_tag(content=javascript.replace("localhost:8000", f"127.0.0.1:{server.port}"))
            tab.page.wait_for_function("() => logged.length >= 2")
            logged = tab.page.evaluate("() => logged")
            tab.close()
    finally:
        server.close()
    assert logged == [
        {"event": "welcome", "data": {"message": "1 connected"}},
        {"event": "message", "data": {"text": "hi"}},
    ]
    assert tab.errors == []


def test_samples_import_public_names_from_the_package_only() -> None:
    """One spelling per name: ``from tornado_websockets import WebSocket``, never from its module."""
    import tornado_websockets

    public = set(tornado_websockets.__all__)
    line = re.compile(r"from tornado_websockets\.[\w.]+ import (?P<names>[\w, ]+)")
    sources = [*PAGES, *ROOT.joinpath("example_project").rglob("*.py")]
    misspelled = [
        f"{source.name}: {match[0]}"
        for source in sources
        for match in line.finditer(source.read_text())
        if public & {name.strip() for name in match["names"].split(",")}
    ]
    assert misspelled == []


def test_the_readme_lists_every_extra_and_site_is_the_django_bundle() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    readme = (ROOT / "README.rst").read_text()
    installation = readme[readme.index("\nInstallation\n") : readme.index("\nJavaScript client\n")]
    assert [extra for extra in extras if f"``{extra}``" not in installation] == []
    bundled = {"django", "fast", "typed", "metrics", "redis"}
    assert sorted(extras["site"]) == sorted(spec for extra in bundled for spec in extras[extra])


def test_the_django_page_documents_every_tornado_key() -> None:
    from tornado_websockets.conf import DEFAULTS

    page = (ROOT / "docs" / "django.rst").read_text()
    table = page[
        page.index("key                          default") : page.index("Event functions in your apps")
    ]
    assert [key for key in DEFAULTS if f"\n``{key}``" not in table] == []


# The project `django-admin startproject` makes, less the admin, with the README's settings sample.
QUICK_START_SETTINGS = """
from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "docs-test-only"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DEFAULT_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
                "django.contrib.messages", "django.contrib.staticfiles"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
              "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                 "django.contrib.auth.context_processors.auth"]}}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""

MANAGE_PY = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""


def test_readme_django_quick_start_is_a_working_page_in_chromium(tmp_path: Path) -> None:
    """The README's Django samples pasted into a new project: sign in, see the page, chat."""
    from playwright.sync_api import expect

    from tests.browser import RunTornado, Tab, chromium

    readme = ROOT / "README.rst"
    django_part = readme.read_text().split("Quick start (Django)")[1].split("\nEvent functions\n")[0]
    page_file = tmp_path / "quick_start.rst"
    page_file.write_text(django_part)
    blocks = [*samples(page_file), *samples(page_file, "html+django")]
    written = [write_module(tmp_path, block) for block in blocks]
    names = sorted(str(path.relative_to(tmp_path)) for path in written if path is not None)
    assert names == [
        "lobby/templates/lobby.html",
        "lobby/templates/registration/login.html",
        "lobby/views.py",
        "lobby/websockets.py",
        "settings.py",  # not used: its lines go into mysite/settings.py below
        "urls.py",
    ]
    (settings_sample,) = [block for block in blocks if block.startswith("# settings.py")]
    (tmp_path / "mysite").mkdir()
    (tmp_path / "mysite" / "__init__.py").touch()
    settings = QUICK_START_SETTINGS + settings_sample.replace("[...,", "[*DEFAULT_APPS,")
    (tmp_path / "mysite" / "settings.py").write_text(settings)
    (tmp_path / "manage.py").write_text(MANAGE_PY)
    # The README's commands, in its order (createsuperuser needs migrate's tables), without prompts.
    commands = re.findall(r"^ {4}python manage\.py (\w+)", django_part, re.M)
    assert commands == ["migrate", "createsuperuser", "runtornado"]
    superuser = {
        "DJANGO_SUPERUSER_USERNAME": "ann",
        "DJANGO_SUPERUSER_PASSWORD": "pw",
        "DJANGO_SUPERUSER_EMAIL": "ann@example.com",  # Django 4.2 refuses an empty one
    }
    server = RunTornado(tmp_path, free_port(), env={"DJANGO_SETTINGS_MODULE": "mysite.settings", **superuser})
    server.manage("migrate", "--noinput")
    server.manage("createsuperuser", "--noinput")
    server.start()
    try:
        with chromium() as browser:
            tab = Tab.open(browser, server.url("/lobby/"))
            page = tab.page
            assert "/accounts/login/" in page.url  # @login_required, before any socket is refused
            page.fill("input[name=username]", "ann")
            page.fill("input[name=password]", "pw")
            page.press("input[name=password]", "Enter")
            page.wait_for_url(server.url("/lobby/"))
            expect(page.locator("#status")).to_have_text("connected")
            # Signing in from the login page itself (no ?next=) lands on the lobby, not a 404.
            other = browser.new_context().new_page()
            other.goto(server.url("/accounts/login/"))
            other.fill("input[name=username]", "ann")
            other.fill("input[name=password]", "pw")
            other.press("input[name=password]", "Enter")
            other.wait_for_url(server.url("/lobby/"))
            other.context.close()
            expect(page.locator("body")).to_contain_text("You are ann")
            page.fill("#text", "hello <b>all</b>")
            page.press("#text", "Enter")
            expect(page.locator("#log li")).to_have_text(["ann: hello <b>all</b>"])
            assert page.locator("#text").get_attribute("maxlength") == "500"
            tab.check_widths("readme-django-quick-start")
            tab.close()
            assert tab.errors == []
    finally:
        server.stop()
