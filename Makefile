# libera: build, test and install.
#   make            build libera.so (release)
#   make test       install what is missing, build, run every test (what CI runs):
#                   Swift unit tests, the C ABI checks, sanitizer runs, a 60 s fuzzing pass,
#                   the Python tests
#   make fuzz       the fuzz target for FUZZ_SECONDS (300) seconds
#   make demo       the main job
#   make install PREFIX=/usr/local   header, library and pkg-config file

PREFIX     ?= /usr/local
SWIFT      ?= swift
CC         ?= cc
BUILD      := build
BIN         = $(shell $(SWIFT) build -c release --show-bin-path)
VERSION    := $(shell awk '/define ERA_VERSION_(MAJOR|MINOR|PATCH) /{v=v sep $$3; sep="."} END{print v}' include/era.h)

FUZZ_SECONDS ?= 300

.PHONY: all setup lib test test-swift test-abi test-python sanitize fuzz test-fuzz install uninstall demo clean

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

# The end-to-end examples (training with ERA in C, PyTorch and JAX) are not written yet; until
# they are, the demo builds libera and runs the README's two C programs: a checked discrete
# ERA bound and a GRPO step.
demo: setup lib
	@mkdir -p $(BUILD)
	@for name in bound grpo; do \
	    Tests/readme-example.sh README.md $$name $(BUILD)/readme_$$name.c && \
	    $(CC) -std=c99 -Wall -Wextra -Werror -I include $(BUILD)/readme_$$name.c -L "$(BIN)" -lera \
	        -Wl,-rpath,"$(BIN)" -o $(BUILD)/readme_$$name && \
	    echo "== README example: $$name" && $(BUILD)/readme_$$name || exit 1; \
	done
	@echo "not yet: the end-to-end training examples (C, PyTorch, JAX) are still to come; see README.md"

clean:
	rm -rf .build .build-asan .build-tsan .build-ubsan Tests/fuzz/.build-fuzz $(BUILD) bindings/python/build \
	       bindings/python/src/*.egg-info
