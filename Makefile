# kokoro-edge: two commands matter.
#   make up    set everything up, then start the service on 127.0.0.1
#   make test  set everything up, then run every test and check
# Everything else here is a step of those two.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Voice packs come from a local mirror when one exists (CI and development).
KOKORO_VOICES_MIRROR ?= $(abspath $(wildcard ../shared/kokoro-voices))
export KOKORO_VOICES_MIRROR
E2E_ADDR ?= 127.0.0.1:18880
BACKEND := target/debug/kokoro-backend
EDGE := target/debug/kokoro-edge
E2E_EDGE_ADDR ?= 127.0.0.1:13000
E2E_NN_ADDR ?= 127.0.0.1:13100
E2E_WYOMING_ADDR ?= 127.0.0.1:18890
ASSETS_DIR ?= $(or $(KOKORO_ASSETS_DIR),$(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME)/kokoro-edge,$(HOME)/.cache/kokoro-edge))
NN_MODEL := $(ASSETS_DIR)/kokoro-v1.0.int8-fconv.onnx
# The wasm-bindgen CLI must match the crate kokoro-core-web pins.
WASM_BINDGEN := 0.2.130

.PHONY: fuzz up up-wasi-nn loadtest soak caws-tools caws-validate caws-static caws-unit caws-mutation caws-contracts caws-integration caws-perf caws-gates caws-selftest caws-ci test setup toolchain sysdeps assets pydeps build fmt-check clippy unit wasm e2e browser chromium bench bench-wyoming

setup: toolchain sysdeps assets pydeps

toolchain:
	@rustup show active-toolchain >/dev/null
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# Not --locked: the CLI's own lock file names a webpki-roots release the registry mirror here lacks.
	@[ "$$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $(WASM_BINDGEN)" ] || \
	  { echo "installing wasm-bindgen-cli $(WASM_BINDGEN)"; $(CARGO) install --quiet wasm-bindgen-cli --version $(WASM_BINDGEN); }

# System libraries: libopus (opus encoder) and pkg-config to find it.
sysdeps:
	@if ! pkg-config --exists opus 2>/dev/null; then \
	  echo "installing libopus-dev pkg-config"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopus-dev pkg-config >/dev/null; \
	fi

assets:
	$(CARGO) xtask assets

# Python tools for the end-to-end tests and benchmarks (pinned in tools/requirements.txt).
$(VENV)/.installed: tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
	touch $@

pydeps: $(VENV)/.installed

# All native targets at once (one feature resolution for tests and binaries, so
# nothing is compiled twice). The component is a wasm cdylib: `wasm` builds it.
build: toolchain sysdeps wasm
	$(CARGO) build --workspace --all-targets --exclude kokoro-edge-component

# Backend on 127.0.0.1:8880, the edge component (in the local wasmtime host) on
# 127.0.0.1:3000 in front of it. Ctrl-C stops both.
up: setup build
	@$(BACKEND) serve & pid=$$!; trap 'kill $$pid 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 1 120); do curl -sf http://127.0.0.1:8880/health >/dev/null && break; sleep 0.5; done; \
	echo "backend: http://127.0.0.1:8880   edge: http://127.0.0.1:3000   playground: http://127.0.0.1:3000/web"; \
	$(EDGE) --listen 127.0.0.1:3000 --backend-url http://127.0.0.1:8880

# The wasi-nn edge alone on 127.0.0.1:3000: the component synthesizes wav/pcm/flac
# itself through wasi:nn (the host loads the model once); no backend runs.
up-wasi-nn: setup build
	@echo "edge (wasi-nn): http://127.0.0.1:3000   playground: http://127.0.0.1:3000/web"
	$(EDGE) --listen 127.0.0.1:3000 --component target/edge-nn.wasm --nn-model $(NN_MODEL)

fmt-check:
	$(CARGO) fmt --all --check

clippy: sysdeps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: sysdeps wasm build
	$(CARGO) test --workspace

# The pure core and the edge component (both builds: wasi-only, and Spin KV/variables),
# and first kokoro-core for the browser (bound by wasm-bindgen into target/web-core/,
# which kokoro-web compiles into both tiers' playground).
wasm: toolchain
	$(CARGO) build -p kokoro-core-web --target wasm32-unknown-unknown --profile web
	$(CARGO) clippy -p kokoro-core-web --target wasm32-unknown-unknown --profile web -- -D warnings
	wasm-bindgen --target web --no-typescript --out-dir target/web-core target/wasm32-unknown-unknown/web/kokoro_core_web.wasm
	$(CARGO) build -p kokoro-core --target wasm32-wasip2
	$(CARGO) build -p kokoro-edge-component --target wasm32-wasip2
	cp target/wasm32-wasip2/debug/kokoro_edge_component.wasm target/edge-wasi.wasm
	$(CARGO) clippy -p kokoro-edge-component --target wasm32-wasip2 --features spin -- -D warnings
	$(CARGO) build -p kokoro-edge-component --target wasm32-wasip2 --features spin
	cp target/wasm32-wasip2/debug/kokoro_edge_component.wasm target/edge-spin.wasm
	$(CARGO) clippy -p kokoro-edge-component --target wasm32-wasip2 --features wasi-nn -- -D warnings
	$(CARGO) build -p kokoro-edge-component --target wasm32-wasip2 --features wasi-nn
	cp target/wasm32-wasip2/debug/kokoro_edge_component.wasm target/edge-nn.wasm

# The backend, the edge in front of it and the wasi-nn edge on test ports around
# $(1); all three are stopped afterwards. $(2) is the wasi-nn edge's backend for
# the routes it forwards (the e2e suite gives it a dead port: it must stand alone).
define with_e2e_servers
	@$(BACKEND) serve --listen $(E2E_ADDR) --wyoming $(E2E_WYOMING_ADDR) --dev-routes > target/e2e-backend.log 2>&1 & echo $$! > target/e2e-backend.pid; \
	$(EDGE) --listen $(E2E_EDGE_ADDR) --backend-url http://$(E2E_ADDR) --kv-memory --dev-routes > target/e2e-edge.log 2>&1 & echo $$! > target/e2e-edge.pid; \
	$(EDGE) --listen $(E2E_NN_ADDR) --component target/edge-nn.wasm --nn-model $(NN_MODEL) --backend-url $(2) --dev-routes > target/e2e-nn.log 2>&1 & echo $$! > target/e2e-nn.pid; \
	trap 'kill $$(cat target/e2e-backend.pid) $$(cat target/e2e-edge.pid) $$(cat target/e2e-nn.pid) 2>/dev/null || true' EXIT; \
	for i in $$(seq 1 120); do curl -sf http://$(E2E_ADDR)/health >/dev/null && curl -sf http://$(E2E_EDGE_ADDR)/health >/dev/null && curl -sf http://$(E2E_NN_ADDR)/health >/dev/null && break; sleep 0.5; done; \
	curl -sf http://$(E2E_ADDR)/health >/dev/null || { cat target/e2e-backend.log; exit 1; }; \
	curl -sf http://$(E2E_EDGE_ADDR)/health >/dev/null || { cat target/e2e-edge.log; exit 1; }; \
	curl -sf http://$(E2E_NN_ADDR)/health >/dev/null || { cat target/e2e-nn.log; exit 1; }; \
	KOKORO_URL=http://$(E2E_ADDR) KOKORO_EDGE_URL=http://$(E2E_EDGE_ADDR) KOKORO_NN_URL=http://$(E2E_NN_ADDR) KOKORO_WYOMING_ADDR=$(E2E_WYOMING_ADDR) $(1)
endef

# The Python end-to-end suite once against the real servers (E2E_TESTS: a part of it,
# e.g. `KOKORO_GOLDEN_UPDATE=1 make e2e E2E_TESTS=tests/e2e/test_golden_audio.py`).
E2E_TESTS ?= tests/e2e
e2e: build pydeps
	$(call with_e2e_servers,$(VENV)/bin/python -m pytest -q $(E2E_TESTS),http://127.0.0.1:9)

# Debian's chromium for the playground's browser tests (Playwright drives it; its own
# browser download cannot work here).
chromium:
	@command -v chromium >/dev/null || { echo "installing chromium"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The playground in a real browser against the real servers; screenshots go to
# target/playground/.
browser: build pydeps chromium
	$(call with_e2e_servers,$(VENV)/bin/python -m pytest -q tests/browser,http://127.0.0.1:9)

# Each step in turn, timed: the log says where a slow run spent its time.
TEST_STEPS := setup fmt-check clippy wasm build unit caws-integration browser loadtest caws-ci
test:
	@t0=$$(date +%s); for step in $(TEST_STEPS); do t=$$(date +%s); \
	  $(MAKE) --no-print-directory $$step; \
	  echo "make test: $$step took $$(( $$(date +%s) - t )) s ($$(( $$(date +%s) - t0 )) s so far)"; \
	done
	@echo "make test: all checks passed"

# Start the backend and the edge on test ports, run the k6 perf gate (budgets from
# .caws/working-spec.yaml), stop them. `make soak SOAK_SECS=600` runs the bounded soak.
LT_ADDR ?= 127.0.0.1:18881
LT_EDGE_ADDR ?= 127.0.0.1:13001
SOAK_SECS ?= 600
define with_servers
	@$(BACKEND) serve --listen $(LT_ADDR) > target/lt-backend.log 2>&1 & echo $$! > target/lt-backend.pid; \
	$(EDGE) --listen $(LT_EDGE_ADDR) --backend-url http://$(LT_ADDR) --kv-memory > target/lt-edge.log 2>&1 & echo $$! > target/lt-edge.pid; \
	trap 'kill $$(cat target/lt-backend.pid) $$(cat target/lt-edge.pid) 2>/dev/null || true' EXIT; \
	for i in $$(seq 1 120); do curl -sf http://$(LT_ADDR)/health >/dev/null && curl -sf http://$(LT_EDGE_ADDR)/health >/dev/null && break; sleep 0.5; done; \
	curl -sf http://$(LT_EDGE_ADDR)/health >/dev/null || { cat target/lt-backend.log target/lt-edge.log; exit 1; }; \
	$(CARGO) xtask loadtest --backend http://$(LT_ADDR) --edge http://$(LT_EDGE_ADDR) \
	  --pid backend=$$(cat target/lt-backend.pid) --pid edge=$$(cat target/lt-edge.pid) $(1)
endef

loadtest: build pydeps
	$(call with_servers,)

soak: build pydeps
	$(call with_servers,--soak $(SOAK_SECS) --soak-vus 2)

# CAWS quality gates: thin calls of `cargo xtask caws` (see .caws/README.md).
CARGO_DENY_VERSION := 0.20.2
CARGO_LLVM_COV_VERSION := 0.6.21
CARGO_MUTANTS_VERSION := 25.3.1
# Runs of the e2e suite for the flake rate; schemathesis examples per operation.
E2E_RUNS ?= 2
CONTRACT_EXAMPLES ?= 20
# `make caws-mutation` runs every mutant (about 20 min here); CI runs a quarter
# (every 4th mutant) and says so in the result's scope.
MUTATION_ARGS ?=
CI_MUTATION_ARGS ?= --shard 0/4
.venv-caws/.installed: tools/caws-requirements.txt
	$(PYTHON) -m venv .venv-caws
	.venv-caws/bin/pip install -q --disable-pip-version-check -r tools/caws-requirements.txt
	touch $@
caws-tools: pydeps .venv-caws/.installed
	@command -v cargo-deny >/dev/null && cargo deny --version | grep -q "$(CARGO_DENY_VERSION)" || \
	  $(CARGO) install --locked cargo-deny --version $(CARGO_DENY_VERSION)
	@command -v cargo-llvm-cov >/dev/null && cargo llvm-cov --version | grep -q "$(CARGO_LLVM_COV_VERSION)" || \
	  $(CARGO) install --locked cargo-llvm-cov --version $(CARGO_LLVM_COV_VERSION)
	@command -v cargo-mutants >/dev/null && cargo mutants --version | grep -q "$(CARGO_MUTANTS_VERSION)" || \
	  $(CARGO) install --locked cargo-mutants --version $(CARGO_MUTANTS_VERSION)
	@rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
	@rustup component list --toolchain nightly --installed | grep -q llvm-tools || \
	  rustup component add llvm-tools-preview --toolchain nightly
# Fuzzing (nightly + cargo-fuzz): each target for FUZZ_SECS, from its committed
# corpus; what adds coverage is merged into fuzz/corpus/<target> (commit it: `make
# test` replays the corpus); a crash stops here with its input in fuzz/artifacts.
FUZZ_SECS ?= 120
FUZZ_TARGETS := request normalize markup voice chunk g2p
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_FLAGS := -max_len=4096 -timeout=10 -rss_limit_mb=2048
fuzz:
	@command -v cargo-fuzz >/dev/null && cargo fuzz --version | grep -q "$(CARGO_FUZZ_VERSION)" || \
	  $(CARGO) install --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION)
	@rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
	@for t in $(FUZZ_TARGETS); do \
	  new=$$(mktemp -d); \
	  echo "== fuzz $$t ($(FUZZ_SECS) s)"; \
	  cargo +nightly fuzz run --fuzz-dir fuzz $$t $$new fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECS) $(FUZZ_FLAGS) 2>&1 | grep -E '^Done|^#[0-9]+ +DONE' ; \
	  test -z "$$(ls fuzz/artifacts/$$t 2>/dev/null)" || { echo "fuzz $$t: finding in fuzz/artifacts/$$t"; exit 1; }; \
	  cargo +nightly fuzz run --fuzz-dir fuzz $$t fuzz/corpus/$$t $$new -- -merge=1 -set_cover_merge=1 $(FUZZ_FLAGS) 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files'; \
	  rm -rf $$new; \
	done
caws-validate:
	$(CARGO) xtask caws validate
caws-static: caws-tools
	$(CARGO) xtask caws static
caws-unit: caws-tools
	$(CARGO) xtask caws unit
caws-mutation: caws-tools
	$(CARGO) xtask caws mutation $(MUTATION_ARGS)
# Provider tests against all three servers; here the wasi-nn edge forwards its
# info and /dev routes to the real backend, as it would be deployed.
caws-contracts: build caws-tools
	$(call with_e2e_servers,$(CARGO) xtask caws contracts --examples $(CONTRACT_EXAMPLES) \
	  --provider backend=http://$(E2E_ADDR) --provider edge=http://$(E2E_EDGE_ADDR) \
	  --provider wasi-nn=http://$(E2E_NN_ADDR),http://$(E2E_ADDR))
caws-integration: build pydeps
	$(call with_e2e_servers,$(CARGO) xtask caws integration --runs $(E2E_RUNS),http://127.0.0.1:9)
caws-perf:
	$(CARGO) xtask caws perf
caws-selftest: caws-tools
	$(CARGO) xtask caws selftest
# Every gate (the full mutation run included), then provenance and the trust score.
caws-gates: caws-validate caws-static caws-unit caws-mutation caws-contracts caws-integration loadtest caws-perf
	$(CARGO) xtask caws provenance
# What CI runs after `caws-integration` and `loadtest`: the other gates (mutation on
# a quarter sample), provenance, and the proof that each gate can fail.
caws-ci: caws-tools caws-contracts
	$(CARGO) xtask caws validate
	$(CARGO) xtask caws static
	$(CARGO) xtask caws unit
	$(CARGO) xtask caws mutation $(CI_MUTATION_ARGS)
	$(CARGO) xtask caws perf
	$(CARGO) xtask caws provenance
	$(CARGO) xtask caws selftest

bench: setup
	$(CARGO) bench --profile dev -p kokoro-backend --bench engine

# Wyoming time to first audio with wyoming-bench (report in target/bench/wyoming.txt).
bench-wyoming: build pydeps
	tools/bench_wyoming.sh
