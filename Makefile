# The lab's commands; `make help` lists them. Everything runs from a virtual environment
# in .venv that the first command creates (pinned by requirements files and constraints.txt).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# make demo knobs: mode, upstream delay D (the seed used 10), burst size N, threads, pool limit, anyio tokens
MODE ?= sync
DELAY ?= 1
N ?= 2
THREADS ?= 40
POOL_LIMIT ?= 100
TOKENS ?= 40

REQUIREMENTS := requirements-dev.txt constraints.txt upstream/requirements.txt receiver/requirements.txt sender/requirements.txt

.PHONY: help venv bench-venv check test tour bench bench-quick soak gil demo upstream receiver sender constraints clean snapshot

help:
	@echo "make check                 the fast lane (<1 min): ruff, mypy, lint-imports, the tests that start no process"
	@echo "make test                  every test but the tour, on 4 workers (<5 min; creates .venv first)"
	@echo "make tour                  the README's tour in the compose lab, every panel checked (~5 min; Docker)"
	@echo "make demo MODE=sync        the seed's experiment on loopback: MODE=sync|async|mixed|threaded|def"
	@echo "                           DELAY=1 N=2 THREADS=40 POOL_LIMIT=100 TOKENS=40 (DELAY=10: the seed's numbers)"
	@echo "make bench                 measure every mode against the model, write tables, charts, goals (~30 min)"
	@echo "                           DELAY=1 (DELAY=10: the seed's), OUT=bench-results/full"
	@echo "make bench-quick           the same in about 5 minutes (a smoke run: goals reported, not enforced)"
	@echo "make gil                   threads beside the GIL: the shared-GIL model against real threads (~3 min)"
	@echo "                           GIL_ARGS=\"--threads 40 --delay 1 --cpu-ms 20 --seconds 20 --out DIR\""
	@echo "make soak                  30 minutes at half capacity: memory, errors and series checked (SOAK_ARGS=--minutes 5)"
	@echo "make upstream|receiver|sender   run one service in the foreground (configure by environment)"
	@echo "make snapshot              draw the Grafana dashboard into dashboard.png from its own queries (no Grafana)"
	@echo "                           SNAPSHOT_ARGS=\"--prometheus http://127.0.0.1:9090 --minutes 15 --require-data\""
	@echo "make constraints           re-pin constraints.txt from the current .venv"
	@echo "make clean                 remove .venv and caches"

$(VENV)/.installed: $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

venv: $(VENV)/.installed

$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt -c constraints.txt
	touch $@

bench-venv: $(VENV)/.bench-installed

# make check: lint, types and layers (pyproject.toml), then every test that starts no process and needs no Docker.
check: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo
	$(PY) -m pytest -m "not process and not compose and not tour" $(PYTEST_ARGS)

# make test: every test but the tour, its files spread over 4 workers (pytest-xdist; a file stays
# on one worker, so a file's tests run one after another), the longest files first (tests/conftest.py).
# The tests mostly wait on upstream's delays, not on the CPU. TEST_WORKERS="-n 0" runs them all
# in one process. Then the tests marked cores, one at a time: they measure what free cores do.
# (pytest exits 5 when a PYTEST_ARGS subset leaves one of the two runs nothing to run.)
TEST_WORKERS ?= -n 4 --dist loadfile --no-loadscope-reorder
test: $(VENV)/.installed
	$(PY) -m pytest -m "not tour and not cores" $(TEST_WORKERS) $(PYTEST_ARGS) || [ $$? = 5 ]
	$(PY) -m pytest -m "cores and not tour" $(PYTEST_ARGS) || [ $$? = 5 ]

# The README's tour in the compose lab, read off the dashboard panel by panel (tests/test_tour.py).
tour: $(VENV)/.installed
	$(PY) -m pytest -m tour $(PYTEST_ARGS)

# make bench: the full profile; BENCH_ARGS passes more (e.g. --receivers http://127.0.0.1:8000).
bench: $(VENV)/.bench-installed
	$(PY) -m bench $(if $(filter command line,$(origin DELAY)),--delay $(DELAY)) $(if $(OUT),--out $(OUT)) $(BENCH_ARGS)

bench-quick: $(VENV)/.bench-installed
	$(PY) -m bench --quick $(if $(OUT),--out $(OUT)) $(BENCH_ARGS)

soak: $(VENV)/.bench-installed
	$(PY) -m bench.soak $(SOAK_ARGS)

gil: $(VENV)/.installed
	$(PY) -m bench.gil $(GIL_ARGS)

demo: $(VENV)/.installed
	$(PY) -m tools.demo --mode $(MODE) --delay $(DELAY) -n $(N) --threads $(THREADS) --pool-limit $(POOL_LIMIT) --tokens $(TOKENS)

upstream receiver sender: $(VENV)/.installed
	$(PY) -m $@

# make snapshot: the dashboard as a PNG, drawn from its queries against a Prometheus (tools/snapshot.py).
snapshot: $(VENV)/.installed
	$(PY) -m tools.snapshot $(SNAPSHOT_ARGS)

constraints: $(VENV)/.installed
	{ head -2 constraints.txt; $(PY) -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
