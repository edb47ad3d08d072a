# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup bench mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 first: its CPU build lies on local disk; a plain `torch` would pull CUDA.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
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
	$(BIN)/pip install -q --disable-pip-version-check -e '.[mutation]'
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/mutation.py --package $(PACKAGE) --minutes $(MINUTES) $(if $(SAMPLE),--sample $(SAMPLE))

clean:
	rm -rf $(VENV) experiments
