# sl — build, install, demo and test. See README.md.
#
#   make demo                 install build deps, build, install into ./stage, run the example
#   make test                 install test deps, run the whole test suite, then a fuzz smoke run
#   make fuzz                 every fuzz target for 10 minutes, a core each (fuzz/run; on demand)
#   make check-sanitizers     the tests under ThreadSanitizer, then AddressSanitizer
#                             (SCOPE=unit, the default: all but ToolTests; SCOPE=all)
#   make install PREFIX=/usr/local [DESTDIR=...]
#   make bench                benchmarks (on demand; never part of the tests)

PREFIX     ?= /usr/local
DESTDIR    ?=
SWIFT      ?= swift
BINDIR      = $(DESTDIR)$(PREFIX)/bin
MANDIR      = $(DESTDIR)$(PREFIX)/share/man
EXAMPLEDIR  = $(DESTDIR)$(PREFIX)/share/doc/sl/examples
TOOLS       = sl-classify sl-encrypt-pgp sl-encrypt-smime sl-tls-probe sl-deliver sl-escrow-pack sl-escrow sl-portal sl-contacts
SCRIPTS     = $(wildcard bin-scripts/sl-*)

# Debian packages: to build, and what the tests drive as real peers.
BUILD_DEPS  = pkg-config libssl-dev libgpgme-dev librnp-dev libsodium-dev libsqlite3-dev libxml2-dev libcurl4-openssl-dev zlib1g-dev libpq-dev
# The demo plays a browser against sl-portal with curl.
DEMO_DEPS   = curl
TEST_DEPS   = $(BUILD_DEPS) $(DEMO_DEPS) gnupg rnp gpgsm openssl procmail time strace mutt python3-jsonschema postfix dnsmasq-base \
              nsd unbound ldnsutils postgresql \
              chromium chromium-driver nginx

.PHONY: all build deps test-deps install uninstall demo test fuzz-smoke fuzz check-sanitizers bench clean

all: build

build: deps
	SWIFT=$(SWIFT) build-aux/release-build >/dev/null

deps:
	@build-aux/apt-install $(BUILD_DEPS)

test-deps:
	@build-aux/apt-install $(TEST_DEPS)
	@# the mail user the gateway tests run sl as (pipe(8) user=sl, procmail, cron)
	@# (a home, as a procmail account has one; pipe(8) and cron still give no HOME)
	@getent passwd sl >/dev/null || useradd --system --create-home --home-dir /var/lib/sl --shell /usr/sbin/nologin sl
	@python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install --quiet cryptography
	@# the portal tests drive a real headless Chromium through Selenium
	@python3 -c 'import selenium' 2>/dev/null || python3 -m pip install --quiet selenium

install: build
	install -d $(BINDIR) $(MANDIR)/man1 $(MANDIR)/man5 $(MANDIR)/man7 $(MANDIR)/man8 $(EXAMPLEDIR)
	bin="$$(SWIFT=$(SWIFT) build-aux/release-build)" && for t in $(TOOLS); do install -s -m 0755 "$$bin/$$t" $(BINDIR)/; done
	for s in $(SCRIPTS); do install -m 0755 $$s $(BINDIR)/; done
	install -m 0644 man/man1/*.1 $(MANDIR)/man1/
	install -m 0644 man/man5/*.5 $(MANDIR)/man5/
	install -m 0644 man/man7/*.7 $(MANDIR)/man7/
	install -m 0644 man/man8/*.8 $(MANDIR)/man8/
	cp -R examples/. $(EXAMPLEDIR)/

uninstall:
	for t in $(TOOLS) $(notdir $(SCRIPTS)); do rm -f $(BINDIR)/$$t; done
	rm -f $(MANDIR)/man1/sl-*.1 $(MANDIR)/man5/sl.conf.5 $(MANDIR)/man7/sl.7 $(MANDIR)/man8/sl-*.8
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/sl

# The README's first command: everything from a fresh clone to a classified sample.
demo:
	@build-aux/apt-install $(DEMO_DEPS)
	$(MAKE) install PREFIX=$(CURDIR)/stage
	PATH="$(CURDIR)/stage/bin:$$PATH" examples/run-demo

# The README's second command, and what CI runs.
# The tests' scratch files go to one fresh directory, removed afterwards whatever
# the result (mode 0755: the Postfix peers drop privileges and must reach it).
test: test-deps
	$(SWIFT) build --build-tests
	@scratch=$$(mktemp -d /tmp/sl-tests.XXXXXX) && chmod 0755 "$$scratch" && \
	  TMPDIR="$$scratch" $(SWIFT) test --skip-build; rc=$$?; rm -rf "$$scratch"; exit $$rc
	$(MAKE) fuzz-smoke

# Every fuzz target for a few seconds from its seeds: the targets keep building and
# the seeds (each a past finding or a fixture) keep passing. See fuzz/README.md.
# As many targets at once as there are cores.
FUZZ_JOBS  ?= $(shell nproc 2>/dev/null || echo 1)
fuzz-smoke:
	SWIFT=$(SWIFT) fuzz/run --time 10 --jobs $(FUZZ_JOBS)

fuzz:
	SWIFT=$(SWIFT) fuzz/run --time 600 --jobs $(FUZZ_JOBS)

# The tests built with -sanitize=thread, then =address, into .build-tsan and
# .build-asan (not .build); fails on a failed test or any sanitizer report. See
# build-aux/check-sanitizers.
SCOPE ?= unit
check-sanitizers: test-deps
	SWIFT=$(SWIFT) build-aux/check-sanitizers --scope $(SCOPE)

bench: build
	bench/classify
	bench/deliver
	bench/escrow
	bench/pgp
	bench/pipeline
	bench/portal
	bench/portal-mail
	bench/smime
	bench/startup
	bench/tls-probe

clean:
	rm -rf .build .build-tsan .build-asan stage fuzz/.build
