# Quick start: `make demo` and `make test` work on a fresh machine with Python 3.11, pip and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Quiet, no version check; the constraints file pins what the test suite runs with.
PIPFLAGS := --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test docs typecheck bench gpu-wheels lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Runtime install (CPU build of ONNX Runtime). Re-run when pyproject/constraints change.
$(VENV)/.installed-runtime: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install $(PIPFLAGS) -e ".[cpu]"
	@touch $@

# Test install: runtime + training (torch, CPU build pinned in constraints.txt) + dev tools.
$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install $(PIPFLAGS) -e ".[cpu,train,dev]"
	@touch $@ $(VENV)/.installed-runtime

demo: $(VENV)/.installed-runtime
	$(BIN)/ainu-engine formats
	$(BIN)/ainu-engine info examples/data/*.csv examples/data/*.bin examples/data/*.parquet
	$(BIN)/ainu-engine convert examples/data/nucleus_insight3.bin --out demo-out/nucleus.parquet --force
	$(BIN)/ainu-engine info --json demo-out/nucleus.parquet
	$(BIN)/ainu-engine simulate demo-out/simulated --classes hiPSC,somatic --n-per-class 2 \
		--channels polII,h3 --locs-per-channel 20000 --format insight3 --roi --seed 1 --force
	$(BIN)/ainu-engine info demo-out/simulated/hiPSC_0000.bin
	$(BIN)/ainu-engine render demo-out/simulated/*_0000.bin --out demo-out/images --channels 1,2 \
		--image-format png --force
	@echo "--- screening the bundled example batch with the bundled model (trained on SIMULATED nuclei)"
	$(BIN)/ainu-engine info examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx
	$(BIN)/ainu-engine screen examples/screen --model examples/models/hipsc_vs_somatic.small_cnn.SIMULATED.onnx \
		--out demo-out/screen --csv --explain 2 --force

# The napari plugin's Qt tests need a display: without one, the suite runs under Xvfb where
# xvfb-run is installed (.ci/install-display), else those tests skip and say why.
XVFB := $(if $(DISPLAY),,$(shell command -v xvfb-run 2>/dev/null))

test: $(VENV)/.installed-dev
	$(if $(XVFB),$(XVFB) -a -s "-screen 0 1280x1024x24") $(BIN)/python -m pytest -q

# The documentation site (docs/conf.py): warnings are errors, the examples are executed.
$(VENV)/.installed-docs: pyproject.toml constraints.txt $(VENV)/.installed-dev
	$(PIP) install $(PIPFLAGS) -e ".[cpu,train,dev,docs]"
	@touch $@

docs: $(VENV)/.installed-docs
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "the site: docs/_build/html/index.html"

# The TensorRT backend, which no machine of this project can run, type-checked (mypy --strict,
# pyproject.toml) against the TensorRT API's stubs. The stubs go to .types/, never onto sys.path:
# they make a `tensorrt` folder that would pass for TensorRT itself. Two faults of the stubs that
# stop mypy are mended here: parameters named `in`, a required parameter after defaults.
TYPES := .types
$(TYPES)/.installed: constraints.txt | $(BIN)/python
	rm -rf $(TYPES)
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps --target $(TYPES) \
		$$(grep -E '^tensorrt-stubs==' constraints.txt)
	sed -i -E 's/, in: list\[/, in_: list[/; s/power: Weights = None, channel_axis: int\)/power: Weights = None, channel_axis: int = ...)/' \
		$(TYPES)/tensorrt_bindings/tensorrt.pyi
	@touch $@

typecheck: $(VENV)/.installed-dev $(TYPES)/.installed
	MYPYPATH=$(TYPES) $(BIN)/python -m mypy

# Benchmarks run in their own environment: the baselines (Picasso, scikit-learn, and torch +
# Captum for inference and occlusion) are installed there only, never in the runtime environment.
BENCH := .venv-bench
$(BENCH)/.installed: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/python -m pip install $(PIPFLAGS) -e ".[cpu,train]"
	# the baselines resolve their own dependencies around the pinned numeric core
	$(BENCH)/bin/python -m pip install --disable-pip-version-check -q -e ".[cpu,bench]" \
		$$(grep -E '^(numpy|numba|llvmlite|scipy|pyarrow|h5py)==' constraints.txt)
	@touch $@

bench: $(BENCH)/.installed
	$(BENCH)/bin/python -m benchmarks run io_load
	$(BENCH)/bin/python -m benchmarks run simulate
	$(BENCH)/bin/python -m benchmarks run render
	$(BENCH)/bin/python -m benchmarks run infer
	$(BENCH)/bin/python -m benchmarks run explain
	$(BENCH)/bin/python -m benchmarks report

# Pure-Python packages the GPU device image lacks, as wheels for benchmarks/gpu_session.sh
# (carry .whl to the device; it reaches no registry). Versions from constraints.txt.
gpu-wheels:
	$(PYTHON) -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
		--python-version 3.12 --implementation py -d .whl \
		$$(grep -E '^(captum|roifile)==' constraints.txt)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check engine kernels training benchmarks tests examples docs/conf.py conftest.py

clean:
	rm -rf $(VENV) $(BENCH) demo-out .pytest_cache .hypothesis docs/_build docs/api/generated $(TYPES)
