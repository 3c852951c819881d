# OpenGP developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
SOURCES = src tests scripts benchmarks
ASSETS = src/opengp/api/web/static
NHSUK = node_modules/nhsuk-frontend/dist/nhsuk
ASSETS_STAMP = $(ASSETS)/.built-$(shell cat package-lock.json | sha1sum | cut -c1-12)
CHROMIUM ?= /usr/bin/chromium

.PHONY: install demo serve test check format bench clean fhir-definitions assets browsers screenshots

install: $(STAMP) assets

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The screens' front-end: the NHS.UK frontend's built CSS, JavaScript and images (npm
# package pinned in package-lock.json) copied where the server serves /assets; git-ignored.
assets: $(ASSETS_STAMP)

$(ASSETS_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make assets needs Node.js and npm (apt-get install npm)" >&2; exit 1; }
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	rm -rf $(ASSETS) && mkdir -p $(ASSETS)
	cp $(NHSUK)/nhsuk-frontend.min.css $(NHSUK)/nhsuk-frontend.min.js $(ASSETS)/
	cp $(NHSUK)/nhsuk-frontend.min.css.map $(NHSUK)/nhsuk-frontend.min.js.map $(ASSETS)/
	cp -R $(NHSUK)/assets/. $(ASSETS)/
	touch $@

# Debian's Chromium for tests/browser: installed when missing and we may (root or sudo -n);
# otherwise the browser tests are skipped, saying why.
browsers:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "NOTE: browser tests will be SKIPPED: $(CHROMIUM) is missing and installing it needs root or password-less sudo"; exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "NOTE: browser tests will be SKIPPED: no apt-get to install chromium"; exit 0; fi; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium \
	  || echo "NOTE: browser tests will be SKIPPED: apt-get install chromium failed"

# A picture of each main page, phone-sized, into docs/screenshots/.
screenshots: install browsers
	$(BIN)/python -m tests.browser.screenshots docs/screenshots

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

test: check fhir-definitions browsers
	$(BIN)/pytest

bench: install
	$(BIN)/python -m benchmarks $(WORKLOADS) --out docs/benchmarks

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache $(ASSETS) node_modules
