# Two commands: `make serve` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The cluster tests' own venv: Roost with Ray (the `cluster` extra). The main venv stays without
# Ray, so the rest of the suite shows that single-machine Roost needs none.
CLUSTER_VENV  := .venv-cluster
CLUSTER_STAMP := $(CLUSTER_VENV)/.installed-stamp
# Empty: Roost's default home ($ROOST_HOME, else ~/.local/share/roost), which the CLI finds alone.
HOME_DIR ?=
# More `roost serve` flags, e.g. SERVE_FLAGS="--port 8081 --api-port 7071" when 8080 is taken.
SERVE_FLAGS ?=
SERVE_STARTED := $(shell date +%s.%N)

# pyproject.toml's build requirements, installed in the venv once: pip's build isolation would
# install mypy a second time, in a throwaway environment, on every install.
BUILD_REQUIRES = $(shell $(PYTHON) -c 'import tomllib; print(" ".join(repr(r) for r in tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))')

.PHONY: install serve test test-cluster check format bench clean

# setup.py compiles the edge's hot path (roost/edge/native.py lists it): rebuilt when it changes.
$(STAMP): pyproject.toml setup.py $(wildcard roost/edge/*.py)
	@scripts/bootstrap-venv.sh "$(PYTHON)" "$(VENV)"
	@scripts/install-system-deps.sh
	$(BIN)/python -m pip install --quiet --upgrade pip $(BUILD_REQUIRES)
	$(BIN)/python -m pip install --quiet --no-build-isolation -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# uv (a dependency of Roost, in the main venv) installs Ray in seconds where pip takes half a
# minute; the edge stays pure Python there (the cluster tests measure no proxying speed).
$(CLUSTER_STAMP): pyproject.toml setup.py $(STAMP)
	@scripts/bootstrap-venv.sh "$(PYTHON)" "$(CLUSTER_VENV)"
	ROOST_PURE_PYTHON=1 $(BIN)/uv pip install --quiet --python $(CLUSTER_VENV)/bin/python -e '.[cluster,dev]'
	@touch $(CLUSTER_STAMP)

serve: install
	@ROOST_SERVE_STARTED=$(SERVE_STARTED) scripts/serve.sh "$(BIN)" "$(HOME_DIR)" $(SERVE_FLAGS)

check: install
	$(BIN)/ruff format --check roost tests setup.py $(wildcard bench)
	$(BIN)/ruff check roost tests setup.py $(wildcard bench)
	$(BIN)/mypy

# Two pytest-xdist workers, one test file at a time each (loadfile: a module's daemon starts once):
# most of an end-to-end test is waiting (builds, daemons, deliberate delays), so two overlap
# well on two cores; tests/e2e/harness.py gives each worker's daemons uids of their own.
test: check
	@scripts/install-system-deps.sh test
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --ignore=tests/cluster
	@$(MAKE) --no-print-directory test-cluster

# Roost on several machines: network namespaces as machines (root), Ray from the cluster venv,
# one test at a time (each runs a head and nodes).
test-cluster: $(CLUSTER_STAMP)
	$(CLUSTER_VENV)/bin/python -m pytest -q tests/cluster

format: install
	$(BIN)/ruff format roost tests setup.py $(wildcard bench)
	$(BIN)/ruff check --fix roost tests setup.py $(wildcard bench)

bench: install $(CLUSTER_STAMP)
	@scripts/install-system-deps.sh bench
	@for script in $(filter-out bench/cluster.py,$(wildcard bench/[!_]*.py)); do echo "== $$script"; $(BIN)/python $$script || exit 1; done
	@echo "== bench/cluster.py"; $(CLUSTER_VENV)/bin/python bench/cluster.py

clean:
	rm -rf $(VENV) $(CLUSTER_VENV) .roost-home .mypy_cache .ruff_cache .pytest_cache build roost/edge/*.so roost/edge/_native.sha256
