# Two commands: `make serve` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOME_DIR ?= $(CURDIR)/.roost-home

.PHONY: install serve test check format bench clean

# setup.py compiles the edge's hot path (roost/edge/native.py lists it): rebuilt when it changes.
$(STAMP): pyproject.toml setup.py $(wildcard roost/edge/*.py)
	@scripts/bootstrap-venv.sh "$(PYTHON)" "$(VENV)"
	@scripts/install-system-deps.sh
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

serve: install
	@scripts/serve.sh "$(BIN)" "$(HOME_DIR)"

check: install
	$(BIN)/ruff format --check roost tests setup.py $(wildcard bench)
	$(BIN)/ruff check roost tests setup.py $(wildcard bench)
	$(BIN)/mypy

test: check
	$(BIN)/python -m pytest -q

format: install
	$(BIN)/ruff format roost tests setup.py $(wildcard bench)
	$(BIN)/ruff check --fix roost tests setup.py $(wildcard bench)

bench: install
	@scripts/install-system-deps.sh bench
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .roost-home .mypy_cache .ruff_cache .pytest_cache build roost/edge/*.so roost/edge/_native.sha256
