# Two commands on a fresh machine with Python 3.11, pip and make:
#   make demo   install, then audit sample_data/ into reports/sample/
#   make test   install, then run the linters, the type checker and the tests
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
RUN := $(UV) run --frozen
SAMPLE := sample_data
DEMO_OUT ?= reports/sample

.PHONY: install demo test lint typecheck pytest clean sample lock bench

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: what pip does by default. Without it, a machine that sets
# PYTHONDONTWRITEBYTECODE (many containers) compiles every module at every start:
# `import prefect` took 3.0-3.5 s instead of 1.1 s on the benchmark machine.
install: $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)

demo: install
	$(RUN) ivig-audit run \
	  --infusions $(SAMPLE)/infusions.csv \
	  --labs $(SAMPLE)/labs.csv \
	  --reviews $(SAMPLE)/reviews.csv \
	  --as-of 2026-11-01T00:00:00 \
	  --out $(DEMO_OUT)

test: install lint typecheck pytest

lint:
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck:
	$(RUN) mypy

pytest:
	$(RUN) pytest

sample: install
	$(RUN) python -m sample_data.generate --patients 300 --seed 42 --out $(SAMPLE) --expected
	$(RUN) python -m sample_data.generate --site-b --patients 80 --seed 7 --out $(SAMPLE)/site_b

bench: install
	$(RUN) python -m bench.bench_audit --sizes 100000 1000000 --reference --repeats 3

lock: $(UV)
	$(UV) lock

clean:
	rm -rf .venv $(TOOLS) reports .pytest_cache .mypy_cache .ruff_cache .hypothesis
