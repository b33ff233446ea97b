# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-golden install sysdeps lint bench clean

$(STAMP): requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/clarity-se run -c recipes/icassp_2023/demo.yaml

# The report test renders the HTML in headless Chromium (Debian package `chromium`).
sysdeps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	    else echo "please install chromium (headless browser used by tests/report/test_report.py)"; fi; }

# Lint, the layer contract (.importlinter), the docstring examples, then the tests.
test: $(STAMP) sysdeps
	$(BIN)/python -m ruff check clarity_se tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --doctest-modules clarity_se
	$(BIN)/python -m pytest -q tests

# The tests that compare with fixtures made on another machine, again with numba compiled for
# a generic x86-64 target (no FMA/AVX) and 1 and 2 torch threads (run by .ci/run).
test-golden: $(STAMP)
	NUMBA_CPU_NAME=generic NUMBA_CACHE_DIR=$$(mktemp -d) CLARITY_SE_TEST_THREADS=1 \
	  $(BIN)/python -m pytest -q -m golden -p no:cacheprovider tests
	NUMBA_CPU_NAME=generic NUMBA_CACHE_DIR=$$(mktemp -d) CLARITY_SE_TEST_THREADS=2 \
	  $(BIN)/python -m pytest -q -m golden -p no:cacheprovider tests

lint: $(STAMP)
	$(BIN)/python -m ruff check clarity_se tests benchmarks

# Speed and quality benchmarks -> results/benchmarks/*.json (the reference timings need a
# pyclarity interpreter: each script's --ref-python, default /work/tools/pyclarity-venv/bin/python; see README).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_amplify.py
	$(BIN)/python benchmarks/bench_evaluator.py
	$(BIN)/python benchmarks/bench_enhancer.py
	$(BIN)/python benchmarks/bench_enhancer_quality.py
	$(BIN)/python benchmarks/bench_run.py

clean:
	rm -rf $(VENV) results/demo demo_out
