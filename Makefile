# Login Connect with Messenger backend. Everything runs offline on 127.0.0.1.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
CARGO  ?= cargo
export MOTO_SERVER_BIN := $(abspath $(VENV)/bin/moto_server)
# CI builds from scratch: incremental caches only cost disk (gigabytes) and time there.
export CARGO_INCREMENTAL ?= 0

.PHONY: help venv bench-tools browser run test fmt fmt-check clippy test-rust lint-template bench size lambda-build soak fuzz report package deploy clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: infra/python/requirements.txt
	@echo "==> Python tools into $(VENV) (moto server, cfn-lint; pinned): about a minute, once"
	@$(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --disable-pip-version-check --progress-bar off -r infra/python/requirements.txt \
	  | awk '/^Collecting/ {print "  " $$1 " " $$2; fflush()} /^Successfully/ {print "  installed " NF-2 " packages"}'; \
	  exit $${PIPESTATUS[0]}
	@touch $@

venv: $(VENV)/.installed ## Python venv with pinned moto[server] and cfn-lint

# Benchmark-only tools, kept out of CI's `make test`: cargo-lambda and the zig it links with.
$(VENV)/.bench-installed: $(VENV)/.installed infra/python/bench-requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/python/bench-requirements.txt
	touch $@

bench-tools: $(VENV)/.bench-installed ## cargo-lambda and zig (pinned) in .venv, for make size and make bench

run: venv ## Start moto, the Messenger sandbox and the local stack on 127.0.0.1 (Ctrl-C stops all)
	@test -x target/debug/local-runner || echo "==> first build of the local stack: see README 'What the first run costs'"
	$(CARGO) run --locked -p local-runner --bin local-runner

browser: ## Debian's chromium for the headless smoke test (installed with apt-get when root; else the test is skipped)
	@if [ -x /usr/bin/chromium ]; then \
	  echo "chromium: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium (apt-get)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "warning: chromium could not be installed; the browser smoke test will be skipped"; \
	else \
	  echo "warning: /usr/bin/chromium is absent and apt-get needs root; the browser smoke test will be skipped"; \
	fi

test: venv browser fmt-check clippy test-rust lint-template ## Everything CI checks

fmt: ## Format the code
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

# The local stacks' functions print CloudWatch EMF metric lines on stdout, as in Lambda: the awk moves
# them to target/test-metrics.jsonl and ends with one total ("N passed, N failed, N ignored").
# --no-fail-fast: the total counts every test binary; pipefail: the status is cargo's, not awk's.
test-rust: venv ## Unit, moto-backed integration and end-to-end tests (ends with the total)
	@mkdir -p target && rm -f target/test-metrics.jsonl
	set -o pipefail; $(CARGO) test --locked --workspace --no-fail-fast 2>&1 \
	  | awk -v metrics=target/test-metrics.jsonl -f infra/local/test-summary.awk

lint-template: venv ## cfn-lint on template.yaml (offline)
	$(VENV)/bin/cfn-lint template.yaml

bench: venv lambda-build ## Benchmarks (criterion and harnesses), printed as comparable figures
	$(CARGO) build --locked --release --bin http-api --bin sender --bin deadline-alerts
	$(CARGO) bench --locked --workspace

SOAK_OPT_INS ?= 2000
SOAK_RATE    ?= 10
soak: venv ## Load with faults: SOAK_OPT_INS opt-ins (2000) at SOAK_RATE/s (10) through the local stack; prints the figures
	set -o pipefail; SOAK_OPT_INS=$(SOAK_OPT_INS) SOAK_RATE=$(SOAK_RATE) \
	  $(CARGO) test --locked -p integration-tests --test soak full_soak -- --ignored --nocapture 2>&1 \
	  | grep -v '^{"'

# Fuzzing (not in `make test`: it needs the nightly toolchain and cargo-fuzz).
FUZZ_RUNS      ?= 1000000
FUZZ_TARGETS   ?= webhook_signature webhook_parse signed_request
FUZZ_TOOLCHAIN ?= nightly

fuzz: ## Fuzz the webhook signature check, webhook parser and signed_request (cargo-fuzz, nightly); FUZZ_RUNS=1000000
	@command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked"; exit 1; }
	@for t in $(FUZZ_TARGETS); do \
	  corpus=$(CURDIR)/fuzz/corpus/$$t; seeds=$(CURDIR)/fuzz/seeds/$$t; dict=$(CURDIR)/fuzz/$$t.dict; \
	  log=$(CURDIR)/fuzz/artifacts/$$t.log; \
	  mkdir -p $$corpus $(CURDIR)/fuzz/artifacts; \
	  echo "fuzz $$t: $(FUZZ_RUNS) runs (log: fuzz/artifacts/$$t.log)"; \
	  if ! cargo +$(FUZZ_TOOLCHAIN) fuzz run --fuzz-dir $(CURDIR)/fuzz $$t $$corpus $$([ -d $$seeds ] && echo $$seeds) -- \
	      -runs=$(FUZZ_RUNS) -print_final_stats=1 $$([ -f $$dict ] && echo -dict=$$dict) >$$log 2>&1; then \
	    grep -E -m1 -A6 'panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)' $$log || tail -n 40 $$log; \
	    grep -E -A2 '^Reproduce with' $$log; echo "fuzz $$t: FAILED (the input is in fuzz/artifacts/$$t/)"; exit 1; \
	  fi; \
	  summary=$$(grep -E '^Done [0-9]+ runs in [0-9]+ second' $$log); \
	  runs=$$(echo "$$summary" | awk '{print $$2}'); secs=$$(echo "$$summary" | awk '{print $$5}'); \
	  echo "  $$summary; $$(awk -v r=$$runs -v s=$$secs 'BEGIN{if (s) printf "%d", r/s; else printf "n/a"}') exec/s;" \
	    "corpus $$(ls $$corpus | wc -l) files; $$(grep -E 'DONE +cov' $$log | tail -n 1 | sed -E 's/^.*DONE[[:space:]]+(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/')"; \
	done

size: lambda-build ## The functions as cargo lambda builds them (x86_64) and their size against the 8 MB goal
	$(CARGO) bench --locked -p integration-tests --bench binary_size

# What `sam build` runs, for the host's x86_64 (the arm64 target is not installed here) into
# target/lambda/<function>/bootstrap. Its default backend, cargo-zigbuild, finds zig as
# `python3 -m ziglang`: the venv's python3 comes first on PATH.
lambda-build: bench-tools
	PATH="$(abspath $(VENV))/bin:$$PATH" $(CARGO) lambda build --locked --release --x86-64 \
	  --bin http-api --bin sender --bin deadline-alerts

report: ## Compliance report of the opt-in table (the local stack's by default); ARGS="--since 7d --json --table NAME"
	@test -x target/debug/ops || echo "==> first build of the ops tool (a few minutes once; cargo shows its progress)"
	$(CARGO) build --locked -p ops
	$(CARGO) run --quiet --locked -p ops -- report $(ARGS)

# Its own .PHONY line: the shared one is edited by other changes.
.PHONY: doctor
doctor: ## Preflight checklist of the local stack of `make run` (✔/✘ with fixes); ARGS="--fix", or ARGS="--stack NAME" for a deployed one
	@test -x target/debug/ops || echo "==> first build of the ops tool (a few minutes once; cargo shows its progress)"
	$(CARGO) build --locked -p ops
	$(CARGO) run --quiet --locked -p ops -- doctor $(ARGS)

package: ## Release binaries for x86_64 (what `sam build` does with cargo lambda, for arm64)
	$(CARGO) build --locked --release --bin http-api --bin sender --bin deadline-alerts
	@ls -l target/release/http-api target/release/sender target/release/deadline-alerts

deploy: ## Build and deploy with SAM (needs AWS credentials, cargo-lambda and network)
	sam build
	sam deploy --guided

clean:
	$(CARGO) clean
	rm -rf $(VENV)
