# One-line targets; scripts/ and .ci/run hold anything longer.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The demo's own venv: only the agent, the collector and the demo extra; rebuilt on changes.
DEMO_VENV := demo-data/venv
DEMO_STAMP := $(DEMO_VENV)/.installed

.PHONY: demo test lint proto proto-check bench train package package-check

$(STAMP): pyproject.toml
	python3 scripts/bootstrap.py $(VENV) && touch $(STAMP)

$(DEMO_STAMP): pyproject.toml $(shell git ls-files agent collector wire 2>/dev/null)
	python3 scripts/bootstrap.py $(DEMO_VENV) --demo && touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/python scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

proto: $(STAMP)
	$(PY) scripts/proto.py generate

proto-check: $(STAMP)
	$(PY) scripts/proto.py check

bench: $(STAMP)
	$(PY) -m bench

train: $(STAMP)
	$(PY) -m agent.training.train

package: $(STAMP)
	$(PY) scripts/package.py

package-check: package
	$(PY) scripts/package_check.py
