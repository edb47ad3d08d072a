# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Exact versions of every dependency (all Python versions, one line each): what CI passed with.
LOCK := requirements/lock.txt
PIP := $(BIN)/pip install -q --disable-pip-version-check -c $(LOCK)

.PHONY: demo test setup bench mutation lock clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 first: its CPU build lies on local disk; a plain `torch` would pull CUDA.
$(STAMP): $(BIN)/python pyproject.toml $(LOCK)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	$(BIN)/python -m compileall -q src  # an editable install compiles nothing: start-up as fast as a wheel's
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/scalarize demo

# Two workers (one torch thread each) on the 2-core machines this runs on; Ray's tests share one.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python benchmarks/framework_overhead.py

# Mutation testing of one core package (not a CI step): make mutation PACKAGE=pareto MINUTES=10 [SAMPLE=200]
PACKAGE ?= search
MINUTES ?= 20
mutation: $(STAMP)
	$(PIP) -e '.[mutation]'
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/mutation.py --package $(PACKAGE) --minutes $(MINUTES) $(if $(SAMPLE),--sample $(SAMPLE))

# Refresh the lock from pyproject.toml's ranges (newest releases that fit, for Python >= 3.10),
# then run `make test`: the suite must pass on the refreshed lock before it is committed.
lock:
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install -q --disable-pip-version-check uv
	$(VENV)-lock/bin/uv pip compile pyproject.toml requirements/lock.in --extra dev --extra mlflow --extra docs \
		--extra mutation --universal --python-version 3.10 --annotation-style line --upgrade -o $(LOCK)
	rm -rf $(VENV)-lock

# The documentation site (mkdocs.yml, docs/, the examples) into site/; any warning fails it.
docs: $(STAMP)
	$(PIP) -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) experiments
