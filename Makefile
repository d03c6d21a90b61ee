# nanocl developer commands. `make run` and `make test` work on a fresh Debian machine: they
# install and start what they need (scripts/dev-env.sh says what it does).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
DEV_ENV := scripts/dev-env.sh
ENV_FILE := target/dev-env/env
# Loads the addresses of the dev services (etcd on loopback, the offline test image).
WITH_ENV := set -a; . $(ENV_FILE); set +a;

.PHONY: run test lint fmt schemas bench dev-env dev-env-down build install deb help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

dev-env: ## Install packages, start dockerd and etcd, build the offline images
	bash $(DEV_ENV) up

dev-env-down: ## Stop the dev etcd (dockerd is left running)
	bash $(DEV_ENV) down

build: dev-env ## Build nanocl and nanocld (release)
	$(CARGO) build --release -p nanocl-cli -p nanocl-controller

install: build ## Install nanocl, nanocld, the systemd unit, completions and man pages (PREFIX=/usr/local, DESTDIR=)
	bash scripts/install.sh

deb: build ## Build target/debian/nanocl_VERSION_ARCH.deb (installs and starts the nanocld service)
	bash scripts/deb.sh

run: build ## nanocld on the embedded store, with examples/ applied (Ctrl-C stops it)
	bash scripts/run.sh

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

test: dev-env lint ## Everything: lint, unit, property, corpus and real-service tests
	$(WITH_ENV) $(CARGO) test --workspace --no-fail-fast

schemas: ## Regenerate manifests/schemas from the types
	NANOCL_UPDATE_SCHEMAS=1 $(CARGO) test -p nanocl-api-types --test schemas

bench: dev-env ## Benchmarks (criterion, medians in target/criterion), peak memory, the proxy against nginx and HAProxy
	bash $(DEV_ENV) bench-tools
	$(CARGO) build --release -p nanocl-cli -p nanocl-controller
	$(WITH_ENV) $(CARGO) bench --workspace
	bash scripts/bench-decode-memory.sh
	$(WITH_ENV) bash scripts/bench-proxy.sh
