# Everything goes through the project's own virtual environment; nothing is installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test bench lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: the bundled quant demo pipeline, end to end, on the embedded SQLite default
run: $(STAMP)
	$(BIN)/tideflow run -f examples/daily-factors.yaml --wait
	$(BIN)/python -m examples.quant report

## make test: lint, types, architecture contracts and the whole test suite
test: $(STAMP)
	$(BIN)/ruff check tideflow tests examples benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -n 2 --dist loadgroup -q

## make bench: the three reference workloads against the plain-Python baselines (SQLite);
## options pass through ARGS, e.g. make bench ARGS="--db sqlite --db postgresql://postgres@127.0.0.1:5432/test --repeat 1"
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --output benchmarks/results.json $(ARGS)

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) tideflow.db tideflow.db-wal tideflow.db-shm .tideflow
