# The two commands a new user needs (see README.md):
#   make start   the whole service: API + admin, Celery worker pools and beat
#   make test    the whole test suite, against the local PostgreSQL and Redis
PYTHON ?= python3
VENV := .venv

.PHONY: start test lint bench

start: $(VENV)/.installed .env
	bin/ensure-test-tools nginx
	bin/start

test: $(VENV)/.installed .env
	bin/ensure-test-tools
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The benchmark against PostgreSQL's own ceiling, then direct against through
# PgBouncer and primary against replica reads (bench/README.md); needs wrk
# (apt-get install -y wrk). BENCH_QUICK=1 make bench: one round of 5 s runs.
bench: $(VENV)/.installed
	$(VENV)/bin/python bench/run.py
	$(VENV)/bin/python bench/pooling.py

# A virtualenv with the pinned dependencies, rebuilt when they change.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Local settings: a random secret key and metrics token, added to .env (new or
# written by hand) whenever it lacks them, and never committed (bin/ensure-env).
.env: FORCE
	$(PYTHON) bin/ensure-env $@

FORCE:
