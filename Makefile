# polyproxy — `make run` starts the proxy on its embedded defaults, `make test` passes the tests.
# Both install what they need first: Node 24 (into .tools/ when the node on PATH is too old), npm packages,
# and for tests the Debian packages of the real servers the specs drive.
SHELL := /bin/bash
NODE_BIN := $(shell scripts/node-bin.sh)
ifeq ($(NODE_BIN),)
$(error no Node.js >= 22.19 and could not install one)
endif
export PATH := $(NODE_BIN):$(PATH)

CONFIG ?=
ARGS ?=

.PHONY: help run test build lint typecheck unit deps test-deps format bench load clean

help:
	@echo "make run [CONFIG=file.yaml]   start polyproxy (default: fixtures/example.yaml)"
	@echo "make test                     lint, typecheck and every spec against real servers"
	@echo "make build                    compile to dist/ (node dist/cli.js --help)"
	@echo "make format                   apply the formatter"
	@echo "make clean                    remove dist/, node_modules/ and .tools/"

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: node_modules/.installed

test-deps:
	@bash scripts/install-test-deps.sh

dist/.built: node_modules/.installed tsconfig.json tsconfig.build.json $(shell find src -name '*.ts' 2>/dev/null)
	rm -rf dist
	npx tsc -p tsconfig.build.json
	@touch $@

build: dist/.built

run: build
	node dist/cli.js serve $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

lint: deps
	npx biome check .

typecheck: deps
	npx tsc --noEmit -p tsconfig.json

test: deps test-deps lint typecheck
	@mkdir -p .tmp
	npx vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest.json; \
	  status=$$?; node scripts/test-summary.mjs .tmp/vitest.json || true; exit $$status

format: deps
	npx biome check --write .

clean:
	rm -rf dist node_modules .tools

# Benchmarks: never part of `make test`. Results go to bench/results/ (see bench/README.md).
# Options pass through BENCH_ARGS, e.g. make bench BENCH_ARGS="--listener postgres --duration 5 --clients 1,10"
BENCH_ARGS ?=

.PHONY: bench-pg

bench-pg: build
	bash scripts/install-bench-deps.sh
	node bench/pg/pgbench.ts $(BENCH_ARGS)

bench: bench-pg
