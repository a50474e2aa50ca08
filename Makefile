# Spendplane: `make run` to try it, `make test` to prove it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install run serve worker test test-embedded lint format bench migrate clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check --upgrade pip
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

# Everything in one go: database, demo tenants and keys, the mock upstream, the server, demo traffic.
run: migrate
	$(PY) manage.py run_demo

# The production server configuration (see spendplane/gunicorn.conf.py).
serve: install
	$(VENV)/bin/gunicorn -c spendplane/gunicorn.conf.py spendplane.wsgi

worker: install
	$(VENV)/bin/celery -A spendplane worker -B --loglevel=INFO

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) bench/proxy_overhead.py

clean:
	rm -rf $(VENV) .cache db.sqlite3*
