# Login Connect with Messenger backend. Everything runs offline on 127.0.0.1.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
CARGO  ?= cargo
export MOTO_SERVER_BIN := $(abspath $(VENV)/bin/moto_server)
# CI builds from scratch: incremental caches only cost disk (gigabytes) and time there.
export CARGO_INCREMENTAL ?= 0

.PHONY: help venv bench-tools sam-tools browser run test fmt fmt-check clippy test-rust test-python lint-template bench size lambda-build soak fuzz report package deploy deploy-config deploy-check check-built-arch sam-events clean

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

test: venv browser fmt-check clippy test-rust test-python lint-template ## Everything CI checks

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

# The Python tools' own tests (infra/python/test_*.py: the moto meter's capacity rules).
test-python: venv ## Unit tests of infra/python (the moto meter)
	cd infra/python && $(abspath $(VENV))/bin/python -m unittest discover -p 'test_*.py'

lint-template: venv ## cfn-lint on template.yaml (offline)
	$(VENV)/bin/cfn-lint template.yaml

bench: venv lambda-build ## Benchmarks (criterion and harnesses), printed as comparable figures
	$(CARGO) build --locked --release --bin http-api --bin sender --bin deadline-alerts --bin event-sender --bin hello-lambda
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
	  --bin http-api --bin sender --bin deadline-alerts --bin event-sender

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

.PHONY: redrive
redrive: ## Show the dead-letter queues, refuse terminal/late jobs, move the rest back; ARGS="--discard-refused --manual" locally, ARGS="--stack NAME" for a deployed one
	$(CARGO) run --quiet --locked -p ops -- redrive $(ARGS)

package: ## Release binaries for x86_64 (what `sam build` does with cargo lambda, for arm64)
	$(CARGO) build --locked --release --bin http-api --bin sender --bin deadline-alerts --bin event-sender
	@ls -l target/release/http-api target/release/sender target/release/deadline-alerts target/release/event-sender

# ---------------------------------------------------------------- deploying with SAM
# The pinned SAM CLI with the pinned cargo-lambda and zig that `sam build` runs, in a venv of their
# own: aws-sam-cli brings ~90 packages whose pins (boto3, Flask, jsonschema, cfn-lint) would fight
# moto's in .venv, and CI's `make test` needs none of them (it would install them on every run).
SAM_VENV := .venv-sam
SAM      := $(abspath $(SAM_VENV))/bin/sam
# The venv first on PATH: `sam build` runs cargo lambda, whose cargo-zigbuild finds zig as
# `python3 -m ziglang`. No telemetry (and no network call for it). The template's
# AWS::LanguageExtensions `!Sub` in the Facebook routes' paths must be expanded locally, which
# SAM CLI >= 1.161 does only when asked (--language-extensions, or this variable); without it
# `sam build` and `sam deploy` fail with "Property 'Path' should be a string".
SAM_RUN  := SAM_CLI_TELEMETRY=0 SAM_CLI_ENABLE_LANGUAGE_EXTENSIONS=1 PATH="$(abspath $(SAM_VENV))/bin:$$PATH" $(SAM)

$(SAM_VENV)/.installed: infra/python/sam-requirements.txt infra/python/bench-requirements.txt
	@echo "==> SAM CLI, cargo-lambda and zig into $(SAM_VENV) (pinned): a few minutes, once"
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/python/sam-requirements.txt
	touch $@

sam-tools: $(SAM_VENV)/.installed ## The pinned SAM CLI (1.170.0), cargo-lambda and zig in .venv-sam, for make deploy

# What the operator fills once: `cp deploy.env.example deploy.env` (never committed: it holds the
# FacebookPathSegment). Command-line values win (`make deploy ARCH=x86_64`).
DEPLOY_ENV ?= deploy.env
-include $(DEPLOY_ENV)
STACK_NAME ?= login-connect-messenger
# One architecture for the build and the deploy: ARCH is the only place it is written, and
# SAM_PARAMETERS (Architecture=$(ARCH)) is what both `sam build` and `sam deploy` get, so an
# x86_64 build cannot be deployed onto arm64 functions (tests/tests/contract/deploy.rs checks it).
ARCH ?= arm64
SAM_PARAMETERS = Architecture="$(ARCH)" FacebookAppId="$(FACEBOOK_APP_ID)" FacebookPageId="$(FACEBOOK_PAGE_ID)" \
  FacebookPathSegment="$(FACEBOOK_PATH_SEGMENT)" PublicBaseUrl="$(PUBLIC_BASE_URL)" \
  AllowedReturnOrigins="$(ALLOWED_RETURN_ORIGINS)" AlarmEmail="$(ALARM_EMAIL)" $(EXTRA_PARAMETERS)
# ELF e_machine of each architecture's binaries (byte 18 of the header).
ELF_MACHINE_arm64  := b7
ELF_MACHINE_x86_64 := 3e

deploy-config: ## Check deploy.env (the values make deploy passes) before anything is built
	@test -f "$(DEPLOY_ENV)" || { echo "$(DEPLOY_ENV) is missing: cp deploy.env.example deploy.env and fill it (README, Deploying with SAM)"; exit 1; }
	@case "$(ARCH)" in arm64|x86_64) ;; *) echo "ARCH must be arm64 or x86_64, not '$(ARCH)'"; exit 1;; esac
	@bad=""; \
	  echo "$(FACEBOOK_APP_ID)" | grep -Eq '^[0-9]+$$' || bad="$$bad FACEBOOK_APP_ID (the numeric App ID);"; \
	  echo "$(FACEBOOK_PAGE_ID)" | grep -Eq '^[0-9]+$$' || bad="$$bad FACEBOOK_PAGE_ID (the numeric Page ID);"; \
	  echo "$(FACEBOOK_PATH_SEGMENT)" | grep -Eq '^[A-Za-z0-9_-]{22,128}$$' || bad="$$bad FACEBOOK_PATH_SEGMENT (openssl rand -hex 16);"; \
	  test -z "$$bad" || { echo "$(DEPLOY_ENV): fill$$bad"; exit 1; }
	@if [ "$(ARCH)" = arm64 ] && ! rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu; then \
	  echo "ARCH=arm64 needs the aarch64 Rust std: rustup target add aarch64-unknown-linux-gnu (or deploy with ARCH=x86_64)"; exit 1; fi

# Each built bootstrap is a binary of ARCH: a guard for a .aws-sam/build left by another build.
check-built-arch:
	@for f in .aws-sam/build/*/bootstrap; do \
	  test -f "$$f" || { echo "no built function in .aws-sam/build"; exit 1; }; \
	  machine=$$(od -An -tx1 -j18 -N1 "$$f" | tr -d ' '); \
	  test "$$machine" = "$(ELF_MACHINE_$(ARCH))" || { echo "$$f is not an $(ARCH) binary: run make deploy ARCH=$(ARCH) again"; exit 1; }; \
	done; echo "built for $(ARCH): $$(ls .aws-sam/build/*/bootstrap | wc -l) functions"

# Non-interactive: what `sam deploy --guided` would ask comes from deploy.env and the flags below.
# (--guided asks once per route "HttpApiFunction has no authentication. Is this okay?": the API
# authenticates in the function, by API key or Meta's signature; plain `sam deploy` only warns.)
# One question is left: the changeset confirmation (samconfig.toml); CONFIRM=no skips it.
deploy: sam-tools deploy-config ## Build for ARCH (arm64) and deploy with SAM from deploy.env (needs AWS credentials)
	$(SAM_RUN) build --parameter-overrides '$(SAM_PARAMETERS)'
	@$(MAKE) --no-print-directory check-built-arch ARCH=$(ARCH)
	$(SAM_RUN) deploy --stack-name $(STACK_NAME) $(if $(AWS_REGION),--region $(AWS_REGION)) \
	  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --resolve-s3 --no-fail-on-empty-changeset \
	  $(if $(filter no,$(CONFIRM)),--no-confirm-changeset) --parameter-overrides '$(SAM_PARAMETERS)'

# Offline (no credentials): the template as SAM reads it, and the build as `sam build` runs it,
# for x86_64 (the host's std; arm64 needs the aarch64 one). About 12 minutes on 2 cores: not in
# `make test`. The other parameters are placeholders: nothing is deployed.
DEPLOY_CHECK_PARAMETERS := Architecture="x86_64" FacebookAppId="1" FacebookPageId="2" \
  FacebookPathSegment="deploy-check-segment-not-deployed"
deploy-check: sam-tools ## sam validate --lint and sam build (x86_64) with the pinned SAM CLI; about 12 minutes
	$(SAM_RUN) validate --lint --region us-east-1
	time $(SAM_RUN) build --parameter-overrides '$(DEPLOY_CHECK_PARAMETERS)'
	@$(MAKE) --no-print-directory check-built-arch ARCH=x86_64
	@ls -l .aws-sam/build/*/bootstrap

# SAM's own sample events (sam local generate-event, offline), which the handlers' tests read:
# the fixtures are what this target writes, unedited. SAM pastes --body into its JSON template as
# it is, hence the escaped quotes of the SQS send job.
SAM_EVENTS := tests/fixtures/sam-events
sam-events: sam-tools ## Regenerate the SAM-generated event fixtures (tests/fixtures/sam-events)
	@mkdir -p $(SAM_EVENTS)
	cd /tmp && $(SAM_RUN) local generate-event apigateway http-api-proxy --method GET --path healthz > $(CURDIR)/$(SAM_EVENTS)/http_api_healthz.json
	cd /tmp && $(SAM_RUN) local generate-event apigateway http-api-proxy --method POST --path v1/logins --body '{"asid":"1234"}' > $(CURDIR)/$(SAM_EVENTS)/http_api_record_login.json
	cd /tmp && $(SAM_RUN) local generate-event apigateway http-api-proxy > $(CURDIR)/$(SAM_EVENTS)/http_api_default.json
	cd /tmp && $(SAM_RUN) local generate-event sqs receive-message > $(CURDIR)/$(SAM_EVENTS)/sqs_poison.json
	cd /tmp && $(SAM_RUN) local generate-event sqs receive-message --body '{\"version\":1,\"page_id\":\"200000000000002\",\"login_id\":\"sam-event-login\"}' > $(CURDIR)/$(SAM_EVENTS)/sqs_send_job.json
	cd /tmp && $(SAM_RUN) local generate-event cloudwatch scheduled-event > $(CURDIR)/$(SAM_EVENTS)/eventbridge_scheduled_event.json

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(SAM_VENV) .aws-sam
