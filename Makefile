# Mandate: `make test` runs every check; see README.md.
SHELL := /bin/bash
# The build cache, outside the clone and keyed by its path (scripts/env.sh).
CHECKOUT_ID := $(shell pwd -P | sha256sum | cut -c1-12)
export CARGO_TARGET_DIR ?= $(HOME)/.cache/mandate/target-$(CHECKOUT_ID)
FUZZ_TARGET_DIR ?= $(HOME)/.cache/mandate/fuzz-target-$(CHECKOUT_ID)
# Marks this checkout's cache as in use, so that another checkout's
# `make setup` (scripts/cache-prune.sh) does not take it for abandoned.
_ := $(shell mkdir -p $(CARGO_TARGET_DIR) && touch $(CARGO_TARGET_DIR)/.last-used)
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_TARGETS := parse_token verify_chain plain_claims location_grammar
LOGS := $(CARGO_TARGET_DIR)/test-logs
# `make test` lints inside its debug builds: cargo compiles the workspace's
# own crates with clippy-driver (the compiler wrapper `cargo clippy` sets),
# so that clippy's lints, warnings as errors, run on every target `cargo
# test --all-targets` builds, and the dependencies compile once, not also
# in check mode for a separate `cargo clippy` (about 5 minutes of CI).
# The release builds (packages, benchmarks) are plain rustc.
LINTED_BUILD := unit webdriver api-fuzz chaos
$(LINTED_BUILD): export RUSTC_WORKSPACE_WRAPPER := clippy-driver
$(LINTED_BUILD): export CLIPPY_ARGS := -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__

## Rewrites ui/src/lib/bindings.ts (the page's types) from the Rust types;
## a unit test fails while it is stale.
bindings:
	MANDATE_WRITE_BINDINGS=1 cargo test -p mandate-app --lib --locked bindings

## Rewrites docs/broker-api.md and docs/errors.md from the code (tests/docs);
## its tests, in `make unit`, fail while they are stale.
docs:
	MANDATE_WRITE_DOCS=1 cargo test -p mandate-docs --locked

## The app and its local stack (a provider, the in-process broker, a demo
## agent); Ctrl-C stops it all. See scripts/run.sh.
run:
	@scripts/run.sh

.PHONY: run bindings docs setup test site release-early ui fmt lint unit webdriver package bench-app bench-memory bench-activity bench-history interop fuzz fuzz-smoke bench vectors api-fuzz chaos

setup:
	@FUZZ_TARGET_DIR=$(FUZZ_TARGET_DIR) scripts/cache-prune.sh
	@scripts/setup.sh

## Everything CI runs.
test: setup release-early fmt site unit webdriver interop api-fuzz fuzz-smoke package
	@python3 scripts/test-summary.py $(LOGS)/unit.log $(LOGS)/webdriver.log $(LOGS)/interop.log $(LOGS)/api-fuzz.log

## The Debian packages of the app, the broker and the CLI, and the app's AppImage, into
## $CARGO_TARGET_DIR/packages/, checked by lintian, appstreamcli,
## desktop-file-validate and systemd-analyze; then installed, run (the app
## from its menu entry, under Xvfb, signing in; the broker as its unit
## says) and removed, as root; and the AppImage, run from a copy on a host
## whose WebKitGTK and GTK are hidden, signing in (docs/release.md).
package: ui
	@mkdir -p $(LOGS)
	set -o pipefail; (timeout 2400 scripts/package.sh && \
	  timeout 600 scripts/with-keyring.sh xvfb-run -a -s "-screen 0 1280x800x24" \
	    node --test --test-force-exit tests/webdriver/installed.mjs && \
	  timeout 600 tests/webdriver/without-host-webkit.sh scripts/with-keyring.sh xvfb-run -a -s "-screen 0 1280x800x24" \
	    node --test --test-force-exit tests/webdriver/appimage.mjs) 2>&1 | tee $(LOGS)/package.log

## The release build `package` needs, started in the background at idle
## priority, so that it runs in the CPU time the tests leave idle
## (scripts/release-early.sh; its output in $(LOGS)/release-build.log).
release-early: ui
	@mkdir -p $(LOGS)
	@scripts/release-early.sh $$PPID $(LOGS)/release-build.log

## The documentation as a static site (MkDocs), into $CARGO_TARGET_DIR/site/:
## README.md as its front page, docs/ as its pages, every internal link
## and anchor checked (scripts/site.sh).
site:
	@timeout 600 scripts/site.sh

## The interface: type-checked, built into ui/dist (which the app embeds),
## and never rendering HTML from data.
ui:
	cd ui && npm run --silent check && npm run --silent build
	@if grep -rn '{@html' ui/src; then echo "ui: {@html} renders text as HTML; agents' text must stay text" >&2; exit 1; fi

fmt:
	cargo fmt --all --check

## Formatting and clippy on their own (`make test` lints in its builds).
lint: fmt ui
	cargo clippy --workspace --all-targets --locked -- -D warnings

# The store's tests run on SQLite and on a throwaway Postgres on 127.0.0.1,
# started here and stopped however the tests end. The desktop engine's
# tests use the real OS keyring: Secret Service on a private D-Bus session
# (scripts/with-keyring.sh). The end-to-end tests
# (tests/e2e) run the workspace's binaries, so those are built first; the
# tests' build then compiles only what the tests add, because both builds
# resolve the dependencies' features alike (scripts/feature-drift.py).
unit: ui
	@mkdir -p $(LOGS)
	python3 scripts/feature-drift.py
	set -o pipefail; url=$$(timeout 300 scripts/pg.sh start) && trap 'scripts/pg.sh stop' EXIT && \
	  cargo build --workspace --bins --locked && \
	  (MANDATE_TEST_PG_URL=$$url MANDATE_REQUIRE_PG=1 MANDATE_REQUIRE_KEYRING=1 \
	     timeout 2400 scripts/with-keyring.sh cargo test --workspace --all-targets --locked && \
	   cargo test --workspace --doc --locked) 2>&1 | tee $(LOGS)/unit.log

## Faults for CHAOS_SECONDS (default 10 minutes): two brokers on one
## Postgres under load, through kill -9, SIGSTOP, Postgres restarts and
## dropped streams (tests/e2e/tests/e2e/chaos.rs; `unit` runs it for 2
## minutes). pg.sh installs Postgres if need be and enables the Postgres
## tests; the chaos test restarts a server of its own beside that one.
CHAOS_SECONDS ?= 600
chaos:
	@mkdir -p $(LOGS)
	set -o pipefail; url=$$(timeout 300 scripts/pg.sh start) && trap 'scripts/pg.sh stop' EXIT && \
	  cargo build --workspace --bins --locked && \
	  MANDATE_TEST_PG_URL=$$url MANDATE_REQUIRE_PG=1 MANDATE_CHAOS_SECONDS=$(CHAOS_SECONDS) \
	    timeout $$(( $(CHAOS_SECONDS) + 1800 )) cargo test -p mandate-e2e --test e2e --locked chaos:: -- --nocapture \
	    2>&1 | tee $(LOGS)/chaos.log

# The real app (WebKitGTK) under a virtual screen and a keyring session,
# driven over WebDriver (tauri-driver); screenshots go to target/e2e-shots/.
# Needs the binaries `unit` builds.
webdriver:
	@mkdir -p $(LOGS)
	set -o pipefail; cargo build --workspace --bins --locked && \
	  timeout 720 scripts/with-keyring.sh xvfb-run -a -s "-screen 0 1280x800x24" \
	    node --test --test-concurrency=1 --test-force-exit tests/webdriver/ 2>&1 | tee $(LOGS)/webdriver.log

# The jose interop test, the test OIDC provider's own checks, the second
# implementation of the verification rules (Python, from docs/protocol.md),
# an agent in Python written from docs/agents.md's "From any language"
# alone, replaying that section's exchanges against live servers, and a
# resource server written with PyJWT alone taking the broker's OAuth
# access tokens (these two need the binaries `unit` builds).
interop:
	@mkdir -p $(LOGS)
	set -o pipefail; (cd tests/interop && timeout 300 node --test && \
	  cd ../idp && timeout 120 node selftest.mjs && \
	  cd ../second-impl && timeout 600 ./run.sh && \
	  cd ../walkthrough && timeout 600 ./run.sh && \
	  cd ../oauth && timeout 600 ./run.sh) 2>&1 | tee $(LOGS)/interop.log

## Each fuzz target for FUZZ_SECONDS (default 60).
fuzz: setup
	@python3 fuzz/seed-corpus.py
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 timeout $$(( $(FUZZ_SECONDS) + 600 )) cargo fuzz run $$t \
	    --target-dir $(FUZZ_TARGET_DIR) corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1) || exit 1; \
	done

## A short fuzz run of each target, as part of `make test`.
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)

## Criterion times, then paired ratios over separate processes.
bench:
	cargo bench -p mandate-core --bench verify
	python3 scripts/bench-report.py
	python3 scripts/bench-ratios.py 15

## The desktop app's start-up, memory and latency (tests/webdriver/bench.mjs):
## the release app in a real WebKit window, over WebDriver, with the release
## broker and CLI, all three built as `make package` builds them.
bench-app: ui
	scripts/package.sh --build
	timeout 900 scripts/with-keyring.sh xvfb-run -a -s "-screen 0 1280x800x24" node tests/webdriver/bench.mjs

## The app's memory against the least Tauri app (tests/floor-app), in one
## run (tests/webdriver/bench-memory.mjs). Both are built as `make package`
## builds the app, and in the same cargo build, so that they share one
## Tauri with the same features.
bench-memory: ui
	CARGO_PROFILE_RELEASE_STRIP=true cargo build --release --locked -p mandate-broker -p mandate-cli \
	  -p mandate-app -p mandate-floor-app --features mandate-floor-app/bench --bins
	timeout 1200 scripts/with-keyring.sh xvfb-run -a -s "-screen 0 1280x800x24" node tests/webdriver/bench-memory.mjs

## The app's Activity screen over 1,000,000 receipts (release app, WebDriver).
bench-activity: ui
	cargo build --release -p mandate-app --locked
	timeout 2400 scripts/with-keyring.sh xvfb-run -a -s "-screen 0 1280x800x24" node tests/webdriver/bench-activity.mjs

## The app's history at scale (crates/mandate-client/benches/history.rs):
## 1,000,000 receipts checked and written, and filtered pages over them.
bench-history:
	cargo bench -p mandate-client --bench history --locked

## schemathesis against the real broker, signed in at the real provider.
API_FUZZ_EXAMPLES ?= 20
api-fuzz:
	@mkdir -p $(LOGS)
	set -o pipefail; scripts/api-fuzz.sh $(API_FUZZ_EXAMPLES) 2>&1 | tee $(LOGS)/api-fuzz.log

## Regenerates tests/vectors from the generator.
vectors:
	cargo run -p mandate-core --example gen_vectors -- tests/vectors
