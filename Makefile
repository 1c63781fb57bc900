# mod_tls: `make` builds build/mod_tls.so, `make demo` starts a demo Apache on
# https://localhost:8443, `make test` runs the test suite. Missing Debian packages are
# installed first (apt, as root); Rust crates come from Debian 13 packages, fetched once.

MOD_TLS_VERSION := 0.1.0
BUILD   := $(CURDIR)/build
APXS    ?= apxs
# rustup installs cargo in ~/.cargo/bin, which a fresh shell may not have on PATH.
CARGO   ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
PYTHON  := /usr/bin/python3

# On a Debian 13 host with the crates installed (librust-rustls-dev, librust-x509-parser-dev)
# those do; elsewhere they are fetched into build/crates.
SYSTEM_CRATES := $(and $(wildcard /usr/share/cargo/registry/rustls-0.23*),$(wildcard /usr/share/cargo/registry/x509-parser-0.17*))
CRATES  := $(if $(SYSTEM_CRATES),/usr/share/cargo/registry,$(BUILD)/crates)

SRC     := $(wildcard src/*.c)
HDR     := $(wildcard src/*.h) mtls/include/mtls.h
OBJ     := $(SRC:src/%.c=$(BUILD)/obj/%.o)
MTLS_A  := $(BUILD)/cargo/release/libmtls.a
MODULE  := $(BUILD)/mod_tls.so

APXS_Q   = $(shell $(APXS) -q $(1) 2>/dev/null)
CFLAGS_MOD = $(call APXS_Q,CFLAGS) $(call APXS_Q,CFLAGS_SHLIB) -fPIC \
	-I$(call APXS_Q,INCLUDEDIR) $(call APXS_Q,EXTRA_INCLUDES) -Imtls/include \
	-DMOD_TLS_VERSION='"$(MOD_TLS_VERSION)"' -Wall -Wextra -Wno-missing-field-initializers

.PHONY: all deps test-deps demo demo-stop test install clean lock clippy

all: deps $(MODULE)

deps: $(BUILD)/.deps-build
test-deps: $(BUILD)/.deps-test

$(BUILD)/.deps-build: scripts/deps.sh
	@scripts/deps.sh build && mkdir -p $(BUILD) && touch $@

$(BUILD)/.deps-test: scripts/deps.sh
	@scripts/deps.sh test && mkdir -p $(BUILD) && touch $@

$(BUILD)/crates/.complete: scripts/fetch-crates.sh
	@scripts/fetch-crates.sh

# cargo takes crates only from $(CRATES), and only the versions mtls/Cargo.lock names
# (--locked): a lock that no longer fits stops the build instead of being rewritten.
CARGO_SRC = --config 'source.crates-io.replace-with="debian"' \
	  --config 'source.debian.directory="$(CRATES)"'
CARGO_OFFLINE = --offline --locked --quiet $(CARGO_SRC)
CRATES_DEP = $(if $(SYSTEM_CRATES),,$(BUILD)/crates/.complete)

# The lock is checked first (cargo metadata resolves without compiling), so that a mismatch
# comes with what to do rather than as a compile failure.
$(MTLS_A): mtls/Cargo.toml mtls/Cargo.lock mtls/build.rs $(wildcard mtls/src/*.rs) $(CRATES_DEP)
	@cd mtls && $(CARGO) metadata $(CARGO_OFFLINE) --format-version 1 >/dev/null || { \
	  echo "mtls: the crate versions in mtls/Cargo.lock are not all in $(CRATES)"; \
	  echo "  (Debian's crates moved on?). 'make lock' updates the lock to what is there,"; \
	  echo "  offline; build, test and commit the new mtls/Cargo.lock."; exit 1; } >&2
	cd mtls && $(CARGO) build --release $(CARGO_OFFLINE) --target-dir $(BUILD)/cargo

# The bridge's lint: clippy on the crate and its tests, every warning an error (missing
# `// SAFETY:` comments included, see mtls/src/lib.rs). Skipped, saying so, on a toolchain
# without clippy.
clippy: $(CRATES_DEP)
	@if $(CARGO) clippy --version >/dev/null 2>&1; then \
	  echo "cd mtls && cargo clippy --all-targets -- -D warnings"; \
	  cd mtls && $(CARGO) clippy --all-targets $(CARGO_OFFLINE) --target-dir $(BUILD)/cargo-clippy \
	    -- -D warnings; \
	else \
	  echo "clippy: SKIPPED, $(CARGO) has no clippy ('rustup component add clippy' adds it)"; \
	fi

# Updates mtls/Cargo.lock to the crate versions in $(CRATES), offline.
lock: $(CRATES_DEP)
	cd mtls && $(CARGO) update --offline $(CARGO_SRC)

$(BUILD)/obj/%.o: src/%.c $(HDR) | $(BUILD)/.deps-build
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_MOD) -c $< -o $@

$(MODULE): $(OBJ) $(MTLS_A) src/mod_tls.map
	$(CC) -shared -o $@ $(OBJ) $(MTLS_A) -Wl,--version-script=src/mod_tls.map \
	  -Wl,--gc-sections -lpthread -ldl -lm

install: all
	install -d $(DESTDIR)$(call APXS_Q,LIBEXECDIR) $(DESTDIR)$(call APXS_Q,SYSCONFDIR)/mods-available
	install -m 644 $(MODULE) $(DESTDIR)$(call APXS_Q,LIBEXECDIR)/mod_tls.so
	install -m 644 dist/tls.load dist/tls.conf $(DESTDIR)$(call APXS_Q,SYSCONFDIR)/mods-available/

demo: all
	@scripts/demo.sh start

demo-stop:
	@scripts/demo.sh stop

# The bridge's lint and its own unit tests first (in debug builds of their own), then the
# suite against real Apache.
test: test-deps all clippy
	cd mtls && $(CARGO) test $(CARGO_OFFLINE) --target-dir $(BUILD)/cargo-test
	$(PYTHON) -m pytest -q test

clean:
	rm -rf $(BUILD)/obj $(BUILD)/cargo $(BUILD)/cargo-test $(BUILD)/cargo-clippy $(MODULE)

# `make loadtest` compares mod_tls with mod_ssl and plain HTTP under load (10-12 minutes;
# report in build/loadtest/, see docs/performance.md). `LOADTEST=short make loadtest` or
# `make loadtest-short` is the 3-minute version. LOADTEST_ARGS passes more options, e.g.
# LOADTEST_ARGS=--update-docs to put the report into docs/performance.md.
LOADTEST ?= full
.PHONY: loadtest loadtest-short loadtest-deps

loadtest-deps: $(BUILD)/.deps-loadtest

$(BUILD)/.deps-loadtest: scripts/deps.sh
	@scripts/deps.sh loadtest && mkdir -p $(BUILD) && touch $@

$(BUILD)/loadtest/hsdrive: loadtest/hsdrive.c | $(BUILD)/.deps-loadtest
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -pthread -o $@ $< -lssl -lcrypto

loadtest: all $(BUILD)/.deps-loadtest $(BUILD)/loadtest/hsdrive
	$(PYTHON) loadtest/loadtest.py --mode $(LOADTEST) $(LOADTEST_ARGS)

loadtest-short:
	@$(MAKE) --no-print-directory loadtest LOADTEST=short
