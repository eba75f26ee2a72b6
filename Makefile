# The README names these targets. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
export REFERRAL_API_INSTANCE_PATH ?= $(CURDIR)/instance

.PHONY: install run seed test test-fast lint openapi openapi-tools bench clean translations browser-deps

$(BIN)/referral-api: setup.cfg pyproject.toml sdk/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet -e "sdk/python[webhooks]"
	touch $@

install: $(BIN)/referral-api

## run: install, migrate the embedded SQLite database, seed demo data, serve on http://127.0.0.1:$(PORT)
## with the webhook worker beside the server (Ctrl-C or SIGTERM stops both); receivers on loopback are
## allowed (development only; set WEBHOOKS_ALLOW_HTTP_LOOPBACK=false to refuse them)
run: export WEBHOOKS_ALLOW_HTTP_LOOPBACK ?= true
run: install
	$(BIN)/referral-api db upgrade
	$(BIN)/referral-api demo seed
	$(BIN)/referral-api serve --host 127.0.0.1 --port $(PORT) --workers 2 --with-worker

seed: install
	$(BIN)/referral-api db upgrade
	$(BIN)/referral-api demo seed

## test: the whole suite (SQLite; PostgreSQL too when TEST_DATABASE_URL is set)
test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/bandit -q -ll -r referral_api

## translations: collect the console's words into the catalogs, then compile them (commit all three)
CATALOGS := referral_api/console/translations
translations: install
	$(BIN)/pybabel extract -F referral_api/console/babel.cfg -k _l --no-location --sort-output --omit-header \
		-o $(CATALOGS)/messages.pot .
	$(BIN)/pybabel update -i $(CATALOGS)/messages.pot -d $(CATALOGS) --no-wrap --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d $(CATALOGS)

## browser-deps: axe-core for the browser tests (Chromium itself is Debian's `chromium` package)
browser-deps:
	npm ci --prefix tests/browser --no-audit --no-fund

## openapi: the Swagger 2.0 document from the code, then its OpenAPI 3.1 conversion (tools/openapi, npm)
openapi: install openapi-tools
	$(BIN)/referral-api openapi export
	node tools/openapi/convert.mjs openapi/swagger.json openapi/openapi.json

## openapi-tools: Redocly's linter and the converters, pinned in tools/openapi/package-lock.json
openapi-tools: tools/openapi/node_modules/.package-lock.json

tools/openapi/node_modules/.package-lock.json: tools/openapi/package-lock.json
	npm ci --prefix tools/openapi --no-audit --no-fund

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache tools/openapi/node_modules
