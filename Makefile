# Quick start: `make demo` and `make test` work on a fresh machine with Python 3.11, pip and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Quiet, no version check; the constraints file pins what the test suite runs with.
PIPFLAGS := --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Runtime install (CPU build of ONNX Runtime). Re-run when pyproject/constraints change.
$(VENV)/.installed-runtime: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install $(PIPFLAGS) -e ".[cpu]"
	@touch $@

# Test install: runtime + dev tools.
$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install $(PIPFLAGS) -e ".[cpu,dev]"
	@touch $@ $(VENV)/.installed-runtime

demo: $(VENV)/.installed-runtime
	$(BIN)/ainu-engine formats
	$(BIN)/ainu-engine info examples/data/*.csv examples/data/*.bin examples/data/*.parquet
	$(BIN)/ainu-engine convert examples/data/nucleus_insight3.bin --out demo-out/nucleus.parquet --force
	$(BIN)/ainu-engine info --json demo-out/nucleus.parquet
	$(BIN)/ainu-engine simulate demo-out/simulated --classes hiPSC,somatic --n-per-class 2 \
		--channels polII,h3 --locs-per-channel 20000 --format insight3 --roi --seed 1 --force
	$(BIN)/ainu-engine info demo-out/simulated/hiPSC_0000.bin

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks run io_load

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check engine kernels training benchmarks tests

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis
