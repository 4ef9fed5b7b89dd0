# kokoro-edge: two commands matter.
#   make up    set everything up, then start the service on 127.0.0.1
#   make test  set everything up, then run every test and check
# Everything else here is a step of those two.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
# Voice packs come from a local mirror when one exists (CI and development).
KOKORO_VOICES_MIRROR ?= $(abspath $(wildcard ../shared/kokoro-voices))
export KOKORO_VOICES_MIRROR

.PHONY: up test setup toolchain assets fmt-check clippy unit wasm-core backend

setup: toolchain assets

toolchain:
	@rustup show active-toolchain >/dev/null
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

assets:
	$(CARGO) xtask assets

backend: setup
	$(CARGO) build -p kokoro-backend

up: backend
	$(CARGO) run -q -p kokoro-backend -- serve

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

wasm-core:
	$(CARGO) build -p kokoro-core --target wasm32-wasip2

test: setup fmt-check clippy unit wasm-core
	@echo "make test: all checks passed"
