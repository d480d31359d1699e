# The two commands of the README: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
EXTRAS ?= test,lint,fast,typed,metrics,django,redis,browser,docs

.PHONY: install lint docs test demo soak clean bench bench-quick js

# What the example project imports: Django, and msgspec for the chat's typed payloads.
DEMO_EXTRAS ?= django,typed

$(BIN)/python:
	@echo "Creating the virtualenv $(VENV) and upgrading pip in it..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# Only the demo's packages (tens of MB, not the test, lint, browser and docs tools), with pip's progress shown.
$(VENV)/.installed-demo: pyproject.toml setup.py | $(BIN)/python
	@echo "Installing the demo's packages into $(VENV): the library with the [$(DEMO_EXTRAS)] extras..."
	$(BIN)/python -m pip install --progress-bar on -e '.[$(DEMO_EXTRAS)]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

docs: install
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test: lint docs
	$(BIN)/python -m pytest

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
BENCH_VENV := bench/.venv
$(BENCH_VENV)/.installed: bench/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[fast,typed]' -r bench/requirements.txt
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench run --mode full --output bench/RESULTS.md

bench-quick: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench run --mode quick

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
