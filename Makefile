# The two commands a new user needs: `make serve` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test image image-test lint format bench bench-quick bench-load bench-missing bench-select bench-serve bench-scale bench-update openapi clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

## serve: migrate a SQLite database under ./data and serve on 127.0.0.1:8000 with the embedded worker
serve: $(VENV)/.installed
	$(BIN)/gmm-service serve

## test: the whole suite on TEST_WORKERS processes (pytest-xdist; PostgreSQL tests run when GMM_TEST_POSTGRES_URL is set)
TEST_WORKERS ?= 2
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

## image: build the Docker image gmm-service:latest (see scripts/image-test.sh)
image: $(VENV)/.installed
	PYTHON=$(BIN)/python scripts/image-test.sh build

## image-test: build the image, then run it alone and as the compose stack (2 workers)
image-test: $(VENV)/.installed
	PYTHON=$(BIN)/python scripts/image-test.sh test

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check service tests bench migrations scripts
	$(BIN)/ruff format --check service tests bench migrations scripts

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix service tests bench migrations scripts
	$(BIN)/ruff format service tests bench migrations scripts

openapi: $(VENV)/.installed
	$(BIN)/gmm-service openapi

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_em.py

bench-quick: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_em.py --quick

bench-load: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_load.py

## bench-serve: the request path against a bare FastAPI route, under wrk
bench-serve: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_serve.py

bench-missing: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_missing.py

## bench-select: model selection over K = 1..9 x 4 covariance types against scikit-learn and mclust
bench-select: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_select.py

## bench-update: an incremental update of 10k rows against one EM iteration on them
bench-update: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_update.py

## bench-scale: 2M x 16 EM in memory, out-of-core, on Dask and Spark MLlib (pip install pyspark pyarrow); 4 GB peak RSS
bench-scale: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_scale.py

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
