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
RUN_ARGS    ?=
TEST_THREADS ?= 1
# Seconds each fuzz target runs in `make test` / `make fuzz`.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := dns_decode dns_names tcp_reassembly message_chunk
PREFIX      ?= /usr/local
DESTDIR     ?=

.PHONY: all setup setup-apt setup-rust setup-fuzz build run test test-unit test-integration \
        fuzz install uninstall clippy fmt clean

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

setup-fuzz: setup-rust
	@cargo +$(NIGHTLY) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz --quiet

build: setup-rust
	$(CARGO) build --release

run: setup build
	./target/release/dnsq-recorder $(RUN_ARGS)

test: setup build test-unit test-integration fuzz

test-unit:
	$(CARGO) test --release --workspace --exclude dnsq-ebpf --exclude dnsq-tests

# Real kernel, real dnsmasq, real clients. Without root they skip, unless
# DNSQ_REQUIRE_BPF=1 (CI), where they fail.
test-integration:
	$(CARGO) test --release -p dnsq-tests -- --test-threads=$(TEST_THREADS)

# Each target runs for FUZZ_SECONDS from the committed seed corpus; new inputs go to
# a scratch directory so the committed corpus only changes on purpose. No sanitizer:
# the code is safe Rust, and the plain build is much faster. A crash
# leaves its input in recorder/fuzz/artifacts/ and fails the run.
fuzz: setup-fuzz
	@for target in $(FUZZ_TARGETS); do \
	  scratch="$$(mktemp -d)"; \
	  echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  ( cd recorder/fuzz && DNSQ_SKIP_EBPF_BUILD=1 $(CARGO) +$(NIGHTLY) fuzz run --release --sanitizer none "$$target" \
	      "$$scratch" "corpus/$$target" -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 \
	      -timeout=10 -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done)" ) \
	    || { rm -rf "$$scratch"; echo "fuzz target $$target failed" >&2; exit 1; }; \
	  rm -rf "$$scratch"; \
	done

install: build
	install -d -m 0755 $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)/etc/systemd/system $(DESTDIR)/etc/dnsq \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 target/release/dnsq-recorder target/release/dnsq $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 dist/dnsq-recorder.service $(DESTDIR)/etc/systemd/system/
	sed -i 's|/usr/local/bin/|$(PREFIX)/bin/|' $(DESTDIR)/etc/systemd/system/dnsq-recorder.service
	[ -e $(DESTDIR)/etc/dnsq/dnsq.toml ] || install -m 0644 dist/dnsq.toml $(DESTDIR)/etc/dnsq/dnsq.toml
	for bin in dnsq-recorder dnsq; do \
	  target/release/$$bin generate man > $(DESTDIR)$(PREFIX)/share/man/man1/$$bin.1; \
	  target/release/$$bin generate completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$bin; \
	  target/release/$$bin generate completions zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$bin; \
	  target/release/$$bin generate completions fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$bin.fish; \
	done
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed; start with: systemctl enable --now dnsq-recorder"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/dnsq-recorder $(DESTDIR)$(PREFIX)/bin/dnsq \
	  $(DESTDIR)/etc/systemd/system/dnsq-recorder.service \
	  $(DESTDIR)$(PREFIX)/share/man/man1/dnsq-recorder.1 $(DESTDIR)$(PREFIX)/share/man/man1/dnsq.1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/dnsq-recorder \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/dnsq \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_dnsq-recorder $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_dnsq \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/dnsq-recorder.fish \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/dnsq.fish
	@echo "kept /etc/dnsq and /var/lib/dnsq (the history)"

clippy:
	$(CARGO) clippy --release --workspace --exclude dnsq-ebpf --all-targets -- -D warnings

# rustfmt.toml's import grouping is a nightly option.
fmt:
	$(CARGO) +$(NIGHTLY) fmt --all

clean:
	$(CARGO) clean

# `make bench` (root): the benchmarks of BENCHMARKS.md. Installs what the harness
# needs, builds, then bench/run.py measures (dnsperf against dnsmasq in a network
# namespace it creates, with and without the recorder; a generated 10-million-message
# history, cached in target/dnsq-bench/history), prints a table and rewrites
# BENCHMARKS.md. 13.6 minutes on 2 cores when the history must be generated (2026-11-27;
# installing the packages and building the tree come on top of that on a new machine).
BENCH_APT_PACKAGES ?= dnsperf tshark iperf3 hyperfine bpftool dnsmasq-base dnsutils iproute2 python3 procps
BENCH_ARGS ?=

.PHONY: bench
bench: setup-rust
	@if [ "$$(id -u)" -ne 0 ]; then echo "make bench needs root (BPF programs, network namespaces)" >&2; exit 1; fi
	@started=$$(date +%s); \
	missing=""; \
	for pkg in $(BENCH_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi; \
	$(MAKE) --no-print-directory build && \
	$(CARGO) build --release -p dnsq-bench && \
	BENCH_STARTED=$$started timeout --signal=TERM --kill-after=60 2400 python3 bench/run.py $(BENCH_ARGS)
