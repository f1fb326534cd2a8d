# The front door for every task. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
export PATH := $(CURDIR)/.cache/bin:$(CURDIR)/.venv/bin:$(PATH)

.PHONY: help deps deps-run deps-test build release run test test-unit test-e2e test-tracing test-deps lint fmt clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

deps: deps-test ## Everything the tests need (what CI runs before `make test`); same as deps-test

deps-run: ## What `make run` needs: curl, python3-venv, Locust in .venv (idempotent; root or sudo when a package is missing)
	deploy/scripts/install-deps.sh run

deps-test: ## What the tests and benchmarks need: also podman, Prometheus, NGINX, HAProxy, Chromium, helm, ... (idempotent)
	deploy/scripts/install-deps.sh test

build: ## Debug build of both services
	$(CARGO) build --workspace

release: ## Release build: target/release/gateway and target/release/backend
	$(CARGO) build --workspace --release --locked

run: deps-run release ## Start 3 backends + gateway, register, run a short Locust load, print stats; Ctrl-C stops all
	deploy/scripts/run-local.sh

test: deps-test test-deps lint test-unit bench-compile test-bench test-e2e test-scenario test-dashboard test-tracing test-observability test-helm test-images compose-check test-resilience ## The whole test suite (what CI runs)

test-unit: ## Unit and integration tests (real servers on port 0)
	$(CARGO) test --workspace --locked

test-e2e: release ## Release binaries + a real headless Locust run; make run's script and its summary table
	tests/e2e/locust_e2e.sh
	python3 -m unittest discover -s tests/e2e -p 'test_*.py' -v

test-tracing: release ## OpenTelemetry traces across gateway and backend, checked by a real OTLP/HTTP receiver
	python3 tests/tracing/test_traces.py

test-deps: ## install-deps.sh with stand-ins for apt-get and pip: what each size installs, no process stopped
	python3 -m unittest discover -s tests/deps -v

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

clean: ## Remove build outputs
	$(CARGO) clean

# --- Scenario runs: scenario/ (the runner), deploy/scenarios (shipped files), tests/scenario ---
.PHONY: scenario scenario-check scenario-compare test-scenario
SCENARIO ?= deploy/scenarios/slow-backend.yaml

scenario: deps-run release ## Run a scenario file (SCENARIO=..., VARIANT=name): load, timed faults, SLO gates; report in target/scenarios/
	python3 -m scenario run $(SCENARIO) $(if $(VARIANT),--variant $(VARIANT))

scenario-check: ## Validate scenario files without running them (SCENARIO=..., default every shipped one)
	python3 -m scenario check $(if $(filter command line,$(origin SCENARIO)),$(SCENARIO),deploy/scenarios/*.yaml)

scenario-compare: ## Two earlier runs side by side: make scenario-compare A=target/scenarios/x/T1 B=target/scenarios/x/T2
	@test -n "$(A)" -a -n "$(B)" || { echo "usage: make scenario-compare A=RUN_DIR B=RUN_DIR" >&2; exit 2; }
	python3 -m scenario compare $(A) $(B)

test-scenario: release ## Scenario files, the runner end to end (real binaries, Locust) and its report in headless Chromium
	python3 -m unittest discover -s tests/scenario -v

# --- Observability: Grafana dashboards, alert rules, /metrics (deploy/grafana, deploy/prometheus) ---
.PHONY: test-observability
test-observability: release ## Dashboards and alert rules against a real Prometheus; promtool on rules and /metrics
	python3 -m unittest discover -s tests/observability -v

# --- Benchmarks: bench/, services/gateway/benches ---
.PHONY: bench bench-costs bench-soak bench-compile bench-partial bench-partial-smoke test-bench tools-oha
bench: release ## Gateway vs NGINX vs HAProxy vs direct, wrk on loopback (BENCH_DURATION, BENCH_ROUNDS, ...); writes target/bench/
	python3 bench/bench.py

bench-costs: release ## Instructions (callgrind), syscalls (strace) and TCP segments per request: gateway, NGINX, HAProxy, direct (COSTS_REQUESTS, ...); writes target/bench/costs.*; also run by make bench
	python3 bench/costs.py

bench-soak: release ## Gateway RSS over 10 million requests at 256 connections (SOAK_REQUESTS, ...); writes target/bench/soak.*
	python3 bench/soak.py

bench-partial: release tools-oha ## One backend of three healthy, slow (+20 ms) or failing (5% 500): every gateway strategy vs NGINX least_conn vs HAProxy leastconn, light/open-loop (oha, half of capacity)/wrk loads; writes target/bench/partial.*
	python3 bench/partial.py

bench-partial-smoke: release tools-oha ## bench-partial's plumbing, one second per load (figures mean nothing)
	PARTIAL_SMOKE=1 BENCH_OUT=target/bench/partial-smoke python3 bench/partial.py

tools-oha: ## oha, bench-partial's open-loop load, pinned, into .cache/tools (cargo install, a few minutes once)
	@test -x .cache/tools/bin/oha || $(CARGO) install oha --version 1.16.0 --locked --root .cache/tools

test-bench: ## bench-partial and bench-costs without timings: the generators' counting and users' keys, oha's summary, the peers' configs (nginx -t, haproxy -c), reading callgrind, strace -c, ss and /proc/net/snmp
	python3 -m unittest discover -s tests/bench -v

bench-compile: ## Compile the criterion micro-benchmarks without running them (run them: cargo bench -p gateway)
	$(CARGO) bench --workspace --no-run --locked --profile dev

# --- Helm chart: helm/gatewaylab, tests/helm ---
.PHONY: helm-lint test-helm helm-package helm-docs
HELM_DIST ?= target/helm

helm-lint: ## helm lint --strict the chart with its defaults and each ci/ values file
	helm lint --strict helm/gatewaylab
	for f in helm/gatewaylab/ci/*.yaml; do helm lint --strict helm/gatewaylab -f "$$f" || exit 1; done

test-helm: release ## Chart: lint, render, Kubernetes schemas, policy checks, render-and-run with the release binaries
	python3 -m unittest discover -s tests/helm -v

helm-package: ## Package the chart (links to deploy/ resolved) into $(HELM_DIST)/
	helm package helm/gatewaylab --destination $(HELM_DIST)

helm-docs: ## Regenerate the chart README's table of values from values.yaml
	python3 tests/helm/values_table.py --write

# --- Container images: Dockerfile, deploy/scripts/{images,base-images}.sh, deploy/compose.yaml, tests/images ---
.PHONY: images base-images test-images compose-check
IMAGE_REPO ?= gatewaylab
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n1)
CONTAINER_ENGINE ?= auto
AIRGAP ?= auto
IMAGE_ENV = IMAGE_REPO=$(IMAGE_REPO) IMAGE_TAG=$(IMAGE_TAG) CONTAINER_ENGINE=$(CONTAINER_ENGINE) AIRGAP=$(AIRGAP)

images: ## Build the gateway and backend images (IMAGE_REPO, IMAGE_TAG): docker when it runs, else podman on local stand-in bases
	$(IMAGE_ENV) deploy/scripts/images.sh

base-images: ## Air-gapped base stand-ins (Rust builder, distroless runtime) from Debian packages; kept once made
	deploy/scripts/base-images.sh

test-images: ## Build both images, run 3 backends + gateway in containers (read-only, uid 65532): API, probe, SIGTERM, sizes
	$(IMAGE_ENV) python3 -m unittest discover -s tests/images -p 'test_*.py' -v

compose-check: release ## Validate deploy/compose.yaml offline: compose config, binaries' --print-config, promtool
	python3 tests/images/compose_check.py

# --- Resilience: tests/resilience, real processes on loopback ---
.PHONY: test-resilience
test-resilience: release ## SIGKILL/SIGSTOP a backend and SIGTERM the gateway under load, 200+ malformed admin requests, state file, slow clients, access log under load
	python3 tests/resilience/run.py

# --- Live dashboards: /dashboard on both services (services/serving/src/dashboard, tests/dashboard) ---
.PHONY: test-dashboard
test-dashboard: release ## /dashboard of gateway and backend in headless Chromium under a small load: no console error, charts, hostile names as text, drain, refused action, killed backend, page weight
	python3 tests/dashboard/test_dashboard.py
