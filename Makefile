# dnsq — the two commands a new machine needs:
#   sudo make run    set up the toolchain, build, start the recorder
#   make test        set up, build, run every test (integration tests need root)
#
# Every set-up step is idempotent and quick when its work is already done.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

CARGO       ?= cargo
NIGHTLY     ?= nightly
# bpf-linker is built against the nightly toolchain's own libLLVM (no other LLVM
# on these machines is new enough); this prefix holds a symlink to it.
LLVM_PREFIX ?= $(HOME)/.cache/dnsq/llvm
# Debian packages: dig/kdig and dnsmasq for the tests, ethtool to force TCP
# segmentation in them, iproute2 for network namespaces.
APT_PACKAGES ?= dnsmasq-base dnsutils knot-dnsutils iproute2 ethtool python3 procps
RUN_ARGS    ?= --print
TEST_THREADS ?= 1

.PHONY: all setup setup-apt setup-rust build run test test-unit test-integration clippy fmt clean

all: build

setup: setup-apt setup-rust

setup-apt:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then echo "missing Debian packages:$$missing (run as root to install them)" >&2; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

setup-rust:
	@rustup toolchain list | grep -q "^$(NIGHTLY)" || rustup toolchain install $(NIGHTLY) --profile minimal
	@rustup component list --toolchain $(NIGHTLY) --installed | grep -q '^rust-src' \
	  || rustup component add rust-src --toolchain $(NIGHTLY)
	@llvm="$$(ls "$$(rustc +$(NIGHTLY) --print sysroot)"/lib/libLLVM.so.* | head -n1)"; \
	mkdir -p "$(LLVM_PREFIX)/lib"; \
	for name in libLLVM.so "$$(basename "$$llvm")"; do \
	  [ "$$(readlink "$(LLVM_PREFIX)/lib/$$name" || true)" = "$$llvm" ] \
	    || ln -sfn "$$llvm" "$(LLVM_PREFIX)/lib/$$name"; \
	done; \
	major="$$(rustc +$(NIGHTLY) -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"; \
	if ! bpf-linker --version >/dev/null 2>&1; then \
	  echo "building bpf-linker against the nightly toolchain's LLVM $$major"; \
	  LLVM_PREFIX="$(LLVM_PREFIX)" $(CARGO) install --locked --force bpf-linker \
	    --no-default-features --features "llvm-$$major" --quiet; \
	fi

build: setup-rust
	$(CARGO) build --release

run: setup build
	./target/release/dnsq-recorder $(RUN_ARGS)

test: setup build test-unit test-integration

test-unit:
	$(CARGO) test --release --workspace --exclude dnsq-ebpf --exclude dnsq-tests

# Real kernel, real dnsmasq, real clients. Without root they skip, unless
# DNSQ_REQUIRE_BPF=1 (CI), where they fail.
test-integration:
	$(CARGO) test --release -p dnsq-tests -- --test-threads=$(TEST_THREADS)

clippy:
	$(CARGO) clippy --release --workspace --exclude dnsq-ebpf --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
