# libera: build, test and install.
#   make            build libera.so (release)
#   make test       install what is missing, build, run every test (what CI runs):
#                   Swift unit tests, the C ABI checks, sanitizer runs, a 60 s fuzzing pass,
#                   the Python tests, the distribution checks (release library, CMake and
#                   pkg-config consumers, the wheel in a fresh virtualenv; last, so that its
#                   torch and jax smoke tests find what test-python installed)
#   make fuzz       the fuzz target for FUZZ_SECONDS (300) seconds
#   make demo       the main job: every example (C, PyTorch, JAX) in its short setting, with
#                   plots and a summary in out/ (examples/demo.sh)
#   make bench      libera against PyTorch, JAX and numpy (bench/run.py; bench/results.json)
#   make install PREFIX=/usr/local   header, library (libera.so.X.Y.Z, its links and its debug
#                   file), pkg-config file and CMake package
#   make wheel      the Python package for PyPI: an sdist and, built from it, a manylinux wheel
#                   (OpenBLAS bundled) for each CPython 3.10 to 3.13 found, in dist/

PREFIX     ?= /usr/local
SWIFT      ?= swift
CC         ?= cc
BUILD      := build
BIN         = $(shell $(SWIFT) build -c release --show-bin-path)
VERSION    := $(shell awk '/define ERA_VERSION_(MAJOR|MINOR|PATCH) /{v=v sep $$3; sep="."} END{print v}' include/era.h)
MAJOR      := $(shell awk '/define ERA_VERSION_MAJOR /{print $$3}' include/era.h)
# libera as released (and installed): the file libera.so.MAJOR.MINOR.PATCH with the SONAME
# libera.so.MAJOR, stripped, its debug information in a separate file that .gnu_debuglink names,
# and the links libera.so.MAJOR and libera.so (for -lera). In $(RELEASE), made by `make lib`.
# (.build/release/libera.so, SwiftPM's own output, stays as it is for the tests and benchmarks.)
RELEASE    := $(BUILD)/lib
REALNAME   := libera.so.$(VERSION)
SONAME     := libera.so.$(MAJOR)
LIBDIR      = $(PREFIX)/lib

FUZZ_SECONDS ?= 300

.PHONY: all setup lib release-lib test test-swift test-abi test-dist test-python sanitize fuzz test-fuzz install \
        uninstall wheel demo bench clean

all: lib

setup:
	@.ci/install-deps

lib:
	$(SWIFT) build -c release --product era
	@$(MAKE) --no-print-directory release-lib

release-lib: $(RELEASE)/$(REALNAME)

# The SONAME is set on a copy (patchelf), so that SwiftPM's build is not relinked; then the
# debug information goes to $(REALNAME).debug and the library keeps only what it needs to run.
$(RELEASE)/$(REALNAME): $(BIN)/libera.so include/era.h
	@command -v patchelf >/dev/null || { echo "make: patchelf is missing (apt-get install patchelf, or make setup)" >&2; exit 1; }
	@mkdir -p $(RELEASE)
	@rm -f $@ $@.debug
	cp "$(BIN)/libera.so" $@.tmp
	patchelf --set-soname $(SONAME) $@.tmp
	objcopy --only-keep-debug $@.tmp $@.debug
	chmod 644 $@.debug
	cd $(RELEASE) && objcopy --strip-unneeded --add-gnu-debuglink=$(REALNAME).debug $(REALNAME).tmp
	mv $@.tmp $@
	ln -sf $(REALNAME) $(RELEASE)/$(SONAME)
	ln -sf $(SONAME) $(RELEASE)/libera.so

test: setup lib
	$(MAKE) --no-print-directory test-swift
	$(MAKE) --no-print-directory test-abi
	$(MAKE) --no-print-directory sanitize
	$(MAKE) --no-print-directory test-fuzz
	$(MAKE) --no-print-directory test-python
	$(MAKE) --no-print-directory test-dist

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

# Distribution: the release library (SONAME, links, debug link, version), make install with
# the CMake package (a C++ consumer built with CMake, a C consumer with pkg-config), and the
# wheel for python3 (built from the sdist, repaired by auditwheel) installed into a fresh
# virtualenv without Swift and without the system OpenBLAS (Tests/dist-checks.sh).
test-dist: setup lib
	@Tests/dist-checks.sh "$(BUILD)"

# The Python package: installs the pip packages it needs when missing (numpy, torch, jax,
# pytest, ...), builds and installs bindings/python, and runs the pytest suite in Tests/python.
test-python: lib
	@bindings/python/ci-test.sh

# The debug file goes to lib/.debug/, where gdb looks for the file .gnu_debuglink names.
# The CMake package (lib/cmake/era) finds its prefix relative to itself.
install: lib
	install -d "$(DESTDIR)$(PREFIX)/include" "$(DESTDIR)$(LIBDIR)/pkgconfig" "$(DESTDIR)$(LIBDIR)/.debug" \
	           "$(DESTDIR)$(LIBDIR)/cmake/era"
	install -m 644 include/era.h "$(DESTDIR)$(PREFIX)/include/era.h"
	install -m 755 "$(RELEASE)/$(REALNAME)" "$(DESTDIR)$(LIBDIR)/$(REALNAME)"
	install -m 644 "$(RELEASE)/$(REALNAME).debug" "$(DESTDIR)$(LIBDIR)/.debug/$(REALNAME).debug"
	ln -sf $(REALNAME) "$(DESTDIR)$(LIBDIR)/$(SONAME)"
	ln -sf $(SONAME) "$(DESTDIR)$(LIBDIR)/libera.so"
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' era.pc.in > "$(DESTDIR)$(LIBDIR)/pkgconfig/era.pc"
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@REALNAME@|$(REALNAME)|' -e 's|@SONAME@|$(SONAME)|' \
	    cmake/eraConfig.cmake.in > "$(DESTDIR)$(LIBDIR)/cmake/era/eraConfig.cmake"
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@MAJOR@|$(MAJOR)|' \
	    cmake/eraConfigVersion.cmake.in > "$(DESTDIR)$(LIBDIR)/cmake/era/eraConfigVersion.cmake"

uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/include/era.h" "$(DESTDIR)$(LIBDIR)/libera.so" "$(DESTDIR)$(LIBDIR)/$(SONAME)" \
	      "$(DESTDIR)$(LIBDIR)/$(REALNAME)" "$(DESTDIR)$(LIBDIR)/.debug/$(REALNAME).debug" \
	      "$(DESTDIR)$(LIBDIR)/pkgconfig/era.pc" "$(DESTDIR)$(LIBDIR)/cmake/era/eraConfig.cmake" \
	      "$(DESTDIR)$(LIBDIR)/cmake/era/eraConfigVersion.cmake"
	-rmdir "$(DESTDIR)$(LIBDIR)/cmake/era" "$(DESTDIR)$(LIBDIR)/cmake" "$(DESTDIR)$(LIBDIR)/.debug" 2>/dev/null

# The Python distribution era-activation (import era) in dist/: the sdist, and built from it
# a wheel for each CPython 3.10 to 3.13 found (PYTHONS="python3.11 ..." to choose), repaired
# by auditwheel into manylinux wheels that carry OpenBLAS (bindings/python/build-dist.sh;
# its build tools live in a virtualenv under build/dist).
wheel: setup lib
	@bindings/python/build-dist.sh dist $(PYTHONS)

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
	       bindings/python/src/*.egg-info bench/build examples/c/build out dist
