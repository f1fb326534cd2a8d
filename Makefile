# The front door for every task. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
export PATH := $(CURDIR)/.cache/bin:$(CURDIR)/.venv/bin:$(PATH)

.PHONY: help deps build release run test test-unit test-e2e lint fmt clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

deps: ## Install system packages, Locust, helm (idempotent; needs root or sudo)
	deploy/scripts/install-deps.sh

build: ## Debug build of both services
	$(CARGO) build --workspace

release: ## Release build: target/release/gateway and target/release/backend
	$(CARGO) build --workspace --release --locked

run: release ## Start 3 backends + gateway, register, run a short Locust load, print stats; Ctrl-C stops all
	deploy/scripts/run-local.sh

test: lint test-unit test-e2e test-observability ## The whole test suite (what CI runs)

test-unit: ## Unit and integration tests (real servers on port 0)
	$(CARGO) test --workspace --locked

test-e2e: release ## Release binaries + a real headless Locust run
	tests/e2e/locust_e2e.sh

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

clean: ## Remove build outputs
	$(CARGO) clean

# --- Observability: Grafana dashboards, alert rules, /metrics (deploy/grafana, deploy/prometheus) ---
.PHONY: test-observability
test-observability: release ## Dashboards and alert rules against a real Prometheus; promtool on rules and /metrics
	python3 -m unittest discover -s tests/observability -v
