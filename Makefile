# OpenGP developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
SOURCES = src tests scripts benchmarks

.PHONY: install demo serve test check format bench clean fhir-definitions

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: install
	$(BIN)/opengp demo
	$(BIN)/opengp serve

serve: install
	$(BIN)/opengp serve

check: install
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

# The official R4 packages: the generated definitions must match them, and the validation
# tests run every official example (fetched with npm into build/fhir-packages).
fhir-definitions: install
	$(BIN)/python scripts/generate_fhir_definitions.py --check
	$(BIN)/python scripts/generate_search_parameters.py --check

test: check fhir-definitions
	$(BIN)/pytest

bench: install
	$(BIN)/python -m benchmarks $(WORKLOADS) --out docs/benchmarks

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache
