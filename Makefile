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
	@bash scripts/install-bench-deps.sh

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

# Benchmarks: never part of `make test` (`make bench-smoke`, ≤ 45 s, runs in CI). Results go to bench/results/ (see
# bench/README.md). Options pass through BENCH_ARGS, e.g. make bench BENCH_ARGS="--only tcp,mysql --rounds 5",
# make bench-pg BENCH_ARGS="--pg-clients 10 --rounds 5"; a development run: BENCH_ARGS="--dev --rounds 1 --duration 2"
BENCH_ARGS ?=

.PHONY: bench-pg bench-smoke

bench: build
	bash scripts/install-bench-deps.sh
	node bench/run.ts $(BENCH_ARGS)

bench-smoke: build
	bash scripts/install-bench-deps.sh
	node bench/run.ts --smoke

bench-pg: build
	bash scripts/install-bench-deps.sh
	node bench/run.ts --only pg $(BENCH_ARGS)

# Load harness (load/README.md): holds CONNECTIONS proxied connections through `workers` proxy processes, ramping in
# steps, and fails when a connection is lost, when the proxy's active count is off, or when the proxy's marginal
# memory per connection at the top step is over MAX_KB_PER_CONN. More options: LOAD_ARGS="--steps 10000,50000 …".
# MODE: tcp, postgres, or postgres-pooled (clients log in through transaction pooling to a real PostgreSQL, run
# SELECT 1 and idle; the run fails when PostgreSQL holds more connections than workers × pool.size per pool).
# Agents and backends are C (load/native/, built on demand) when a compiler is there: install-load-deps.sh installs
# gcc and libssl-dev when missing; if that fails, the Node ones run.
CONNECTIONS ?= 20000
MODE ?= tcp
WORKERS ?= auto
MAX_KB_PER_CONN ?= 6
LOAD_ARGS ?=

load: build
	@bash scripts/install-load-deps.sh || echo "load: no C compiler could be installed: the Node agents and backends will run"
	node load/run.ts --connections $(CONNECTIONS) --mode $(MODE) --workers $(WORKERS) --max-kb-per-conn $(MAX_KB_PER_CONN) $(LOAD_ARGS)

# Deployment (README "Deployment"): `make stack` runs docker-compose.yml's topology as local processes: 3 polyproxy
# instances (dist/cli.js) sharing one Redis, real PostgreSQL/MariaDB/Redis, CongoDB, an SMTP sink and an HTTP origin,
# two tenants per protocol, then prints the quick-start commands with the ports it bound. It stops by itself after
# STACK_TTL seconds, or with `make stack-down`. `make deploy-check` validates deploy/k8s (Kubernetes schemas, unknown
# fields refused), docker-compose.yml (compose-spec schema, then `docker compose config -q` or Debian's
# `docker-compose config -q`), the Dockerfile and every polyproxy config in deploy/.
STACK_DIR ?= .tmp/stack
STACK_TTL ?= 3600

.PHONY: stack stack-down deploy-check

stack: build test-deps
	node stack/stack.ts up --dir $(STACK_DIR) --ttl $(STACK_TTL)

stack-down:
	node stack/stack.ts down --dir $(STACK_DIR)

deploy-check: deps
	@docker compose version >/dev/null 2>&1 || bash scripts/apt-ensure.sh deploy-check docker-compose || true
	npx vitest run spec/deploy/manifests.spec.ts
	@if docker compose version >/dev/null 2>&1; then docker compose -f docker-compose.yml config -q; \
	elif command -v docker-compose >/dev/null; then docker-compose -f docker-compose.yml config -q; \
	else echo "deploy-check: no compose client could be installed: docker-compose.yml checked against its schema only"; fi
	@echo "deploy-check: ok"
