# vom: `make run` starts the console, `make test` runs the whole test suite. Each sets itself up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench bench-postgres demo lock clean-var

$(VENV)/.installed: requirements.lock
	./scripts/system-deps.sh run
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.lock
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.lock
	touch $@

run: $(VENV)/.installed
	./scripts/run.sh

test: $(VENV)/.installed-dev
	./scripts/system-deps.sh test
	./scripts/test.sh

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy inventory/drivers inventory/services provisioning/services vom/jobs vom/web
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

bench: $(VENV)/.installed-dev
	./scripts/system-deps.sh bench
	$(PY) -m bench.run

bench-postgres: $(VENV)/.installed-dev
	./scripts/system-deps.sh bench
	VOM_PG_DURABLE=1 ./scripts/with-postgres.sh $(PY) -m bench.run --skip-provisioning

demo: $(VENV)/.installed
	$(PY) scripts/make_demo.py

lock:
	$(PY) -m pip install -q pip-tools
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.lock requirements.in
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-dev.lock requirements-dev.in

clean-var:
	rm -rf var
