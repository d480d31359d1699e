# The two commands of the README: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
EXTRAS ?= test,lint,fast,typed,metrics,django,redis,browser,docs
# Exact versions of every tool and extra (requirements/README.md says how to refresh them with `make lock`):
# a release upstream never changes what a fresh clone installs. The package's own ranges stay ranges.
CONSTRAINTS ?= requirements/constraints.txt
PIP_INSTALL = $(BIN)/python -m pip install -c $(CONSTRAINTS)

# The other supported Pythons, where pyenv is how this machine has them: the shims answer `python3.12` and
# `python3.13` only for the versions PYENV_VERSION names, and tox looks for those names on PATH.
PYENV_PYTHONS := $(shell command -v pyenv >/dev/null 2>&1 && pyenv versions --bare 2>/dev/null \
	| grep -E '^3\.1[1-3]\.[0-9]+$$' | sort -t. -k2,2n -k3,3n | tr '\n' ':' | sed 's/:$$//')
ifneq ($(PYENV_PYTHONS),)
export PYENV_VERSION := $(PYENV_PYTHONS)
endif

.PHONY: install lint docs test test-matrix test-latest lock demo soak clean bench bench-quick bench-echo bench-peers bench-floor bench-pyclient js

# What the example project imports: Django, and msgspec for the chat's typed payloads.
DEMO_EXTRAS ?= django,typed,metrics

$(BIN)/python:
	@echo "Creating the virtualenv $(VENV) and upgrading pip in it..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py $(CONSTRAINTS) | $(BIN)/python
	$(PIP_INSTALL) --quiet -e '.[$(EXTRAS)]' -r requirements/tools.in
	touch $@

# Only the demo's packages (tens of MB, not the test, lint, browser and docs tools), with pip's progress shown.
$(VENV)/.installed-demo: pyproject.toml setup.py $(CONSTRAINTS) | $(BIN)/python
	@echo "Installing the demo's packages into $(VENV): the library with the [$(DEMO_EXTRAS)] extras..."
	$(PIP_INSTALL) --progress-bar on -e '.[$(DEMO_EXTRAS)]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

docs: install
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test: lint docs
	$(BIN)/python -m pytest

# The suite on the other supported Pythons and on the oldest supported set (Tornado's floor, Django 4.2),
# each from the same constraints: tox.ini. `.ci/run` runs this after `make test`.
MATRIX ?= py312,py313,lowest
test-matrix: install
	$(BIN)/tox run -e $(MATRIX)

# On purpose, not in CI: the newest releases every range allows, no constraints, fresh environments.
test-latest: install
	$(BIN)/tox run -r -e latest

# Re-resolve the constraints (after changing a range in pyproject.toml, or to take new releases on purpose).
lock: install
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) uv
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --all-extras pyproject.toml \
		requirements/tools.in -o requirements/constraints.txt
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --all-extras pyproject.toml \
		requirements/tools.in requirements/lowest.in -o requirements/constraints-lowest.txt

# client.js (the classic script) is generated from client.mjs; tests/test_client_js.py checks they agree.
js:
	$(PYTHON) tools/build_js.py

# The Django example project (example_project/): SQLite database, demo users demo/demo and alice/alice.
demo: $(VENV)/.installed-demo
	cd example_project && $(abspath $(BIN))/python manage.py migrate --noinput
	cd example_project && $(abspath $(BIN))/python manage.py seeddemo
	cd example_project && $(abspath $(BIN))/python manage.py runtornado $(PORT)

# The long versions of the fuzz and soak tests (the suite runs short ones).
SOAK_CYCLES ?= 50000
FUZZ_FRAMES ?= 200000
soak: install
	TWS_SOAK_CYCLES=$(SOAK_CYCLES) TWS_FUZZ_FRAMES=$(FUZZ_FRAMES) $(BIN)/python -m pytest -s -o timeout=1800 \
		tests/test_soak.py tests/test_fuzz.py tests/test_limits.py

# The benchmark against raw Tornado and the peers (bench/README.md), in its own venv: the peers
# are never dependencies of the package. `make bench` rewrites bench/RESULTS.md (tens of minutes);
# `make bench-quick` prints a smaller run (under two minutes).
# One bench venv per Python (`make bench PYTHON=python3.13`); the report names the Python it ran on.
BENCH_PY := $(shell $(if $(PYENV_PYTHONS),PYENV_VERSION=$(PYENV_PYTHONS)) $(PYTHON) \
	-c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
BENCH_VENV := bench/.venv-$(BENCH_PY)
$(BENCH_VENV)/.installed: bench/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[fast,typed,uvloop]' -r bench/requirements.txt
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench run --mode full --uvloop --output bench/RESULTS.md

bench-quick: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench run --mode quick

# Echo at 1, 10 and 100 clients alone (5 repetitions, about 8 minutes), into bench/RESULTS-echo-<python>.md:
# run it once per Python to compare them (`make bench-echo PYTHON=python3.13`).
bench-echo: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench run --mode echo --no-redis --output bench/RESULTS-echo-$(BENCH_PY).md

# The Python client's own cost (bench/pyclient.py, under a minute): CPU per frame received from a fan-out
# of 10,000 small frames per second, beside the websockets package and the benchmark's load client.
# The kernel's floor under a fan-out (bench/sendfloor.py, under a minute): CPU of one bare socket.send
# per member to 5,000 loopback connections, what no server's CPU per delivery can go below here.
bench-floor: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench.sendfloor

bench-pyclient: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[fast,typed,client]'
	$(BENCH_VENV)/bin/python -m bench.pyclient

# Binary echo, 16 KiB as bytes in MessagePack against the same base64 in JSON (5 repetitions, about
# 2 minutes), into its own section of bench/RESULTS.md; the project's venv has all it needs.
.PHONY: bench-binary
bench-binary:
	$(BIN)/python -m bench.binary --repetitions 5 --results bench/RESULTS.md

# The raw servers side by side (issue 27): raw Tornado, aiohttp and websockets against ours on both loops;
# echo at 1, 10 and 100 clients, fan-out to 5,000, idle memory (3 repetitions, about 15 minutes).
bench-peers: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench run --mode peers --uvloop --no-redis --output bench/RESULTS-peers-$(BENCH_PY).md

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
