# libera: build, test and install.
#   make            build libera.so (release)
#   make test       install what is missing, build, run every test (what CI runs):
#                   Swift unit tests, the C ABI checks, sanitizer runs, a 60 s fuzzing pass,
#                   the Python tests
#   make fuzz       the fuzz target for FUZZ_SECONDS (300) seconds
#   make demo       the main job: every example (C, PyTorch, JAX) in its short setting, with
#                   plots and a summary in out/ (examples/demo.sh)
#   make bench      libera against PyTorch, JAX and numpy (bench/run.py; bench/results.json)
#   make install PREFIX=/usr/local   header, library and pkg-config file

PREFIX     ?= /usr/local
SWIFT      ?= swift
CC         ?= cc
BUILD      := build
BIN         = $(shell $(SWIFT) build -c release --show-bin-path)
VERSION    := $(shell awk '/define ERA_VERSION_(MAJOR|MINOR|PATCH) /{v=v sep $$3; sep="."} END{print v}' include/era.h)

FUZZ_SECONDS ?= 300

.PHONY: all setup lib test test-swift test-abi test-python sanitize fuzz test-fuzz install uninstall demo bench clean

all: lib

setup:
	@.ci/install-deps

lib:
	$(SWIFT) build -c release --product era

test: setup lib
	$(MAKE) --no-print-directory test-swift
	$(MAKE) --no-print-directory test-abi
	$(MAKE) --no-print-directory sanitize
	$(MAKE) --no-print-directory test-fuzz
	$(MAKE) --no-print-directory test-python

# Swift unit tests of the core (XCTest).
test-swift:
	$(SWIFT) test --disable-swift-testing

# The C ABI: header hygiene, exported symbols, the C test program, install + pkg-config,
# and the README example.
test-abi: lib
	@Tests/abi-checks.sh "$(BIN)" "$(BUILD)"

# The Swift tests under AddressSanitizer (leaks included), the C tests against an
# ASan+UBSan-instrumented libera, and the threading tests under ThreadSanitizer
# (instrumented builds in .build-asan, .build-tsan; logs in build/sanitize/logs).
sanitize:
	@Tests/sanitize.sh

# libFuzzer over every era.h entry point against an ASan + coverage-instrumented libera
# (Tests/fuzz/run.sh: replays Tests/fuzz/regressions/, then fuzzes from Tests/fuzz/corpus/).
fuzz:
	@Tests/fuzz/run.sh $(FUZZ_SECONDS)

test-fuzz:
	@Tests/fuzz/run.sh 60

# The Python package: installs the pip packages it needs when missing (numpy, torch, jax,
# pytest, ...), builds and installs bindings/python, and runs the pytest suite in Tests/python.
test-python: lib
	@bindings/python/ci-test.sh

install: lib
	install -d "$(DESTDIR)$(PREFIX)/include" "$(DESTDIR)$(PREFIX)/lib/pkgconfig"
	install -m 644 include/era.h "$(DESTDIR)$(PREFIX)/include/era.h"
	install -m 755 "$(BIN)/libera.so" "$(DESTDIR)$(PREFIX)/lib/libera.so"
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' era.pc.in > "$(DESTDIR)$(PREFIX)/lib/pkgconfig/era.pc"

uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/include/era.h" "$(DESTDIR)$(PREFIX)/lib/libera.so" \
	      "$(DESTDIR)$(PREFIX)/lib/pkgconfig/era.pc"

# The main job: builds and installs libera into build/prefix, installs the Python package and
# the examples' packages when missing, runs each example in its short setting (each verifies
# its entropy bound and fails the demo if it does not hold) and writes out/summary.md.
demo: setup lib
	@examples/demo.sh

# One benchmark run: libera (C and Python) against PyTorch eager, JAX jit and numpy on the same
# inputs, with a read-bandwidth floor; prints the table and writes bench/results.json.
bench: setup lib
	@bindings/python/ci-test.sh --install
	python3 bench/run.py

clean:
	rm -rf .build .build-asan .build-tsan .build-ubsan Tests/fuzz/.build-fuzz $(BUILD) bindings/python/build \
	       bindings/python/src/*.egg-info bench/build examples/c/build out
