#!/usr/bin/env bash
# Sanitizer runs of libera (make sanitize). Usage: Tests/sanitize.sh [STAGE...]
#   asan     Swift tests (XCTest) under AddressSanitizer + LeakSanitizer   scratch .build-asan
#   ubsan    Swift tests under UndefinedBehaviorSanitizer                   scratch .build-ubsan
#            Skipped, with the reason, when swiftc refuses -sanitize=undefined, as Swift 6.3 on
#            x86_64 Linux does (its driver looks for libclang_rt.ubsan-x86_64.a; the toolchain
#            ships libclang_rt.ubsan_standalone-x86_64.a). swiftc emits no UBSan checks into
#            Swift code anyway: UBSan covers the C side, in c-asan.
#   c-asan   Tests/c/test_*.c under ASan + UBSan against an ASan libera.so (release; set
#            SANITIZE_C_CONFIGS="debug release" to add the debug library: about 4 minutes more,
#            most of it test_concurrency)                                   scratch .build-asan
#   tsan     the Swift thread tests (--filter Thread) and Tests/c/test_*.c under
#            ThreadSanitizer against a TSan libera.so (release)              scratch .build-tsan
# No STAGE: all four. Every build uses its own --scratch-path; .build/ is never touched.
# C programs, logs and the LSan suppression file go to build/sanitize/ (full logs in logs/).
# The console shows each command and the runners' own output without the per-case "ok" lines,
# and the script ends with "sanitize: N passed, M failed" (one count per run); it exits
# non-zero when a run fails, a build fails, or any sanitizer report appears in any output.
#
# Environment: SWIFT (default swift), SANITIZE_CC (default: the clang next to swift; its
# compiler-rt must be the one swiftc instruments for), SANITIZE_TSAN_FILTER (default Thread),
# SANITIZE_C_CONFIGS (default release: the configurations of the ASan libera.so for c-asan).
#
# How libera.so is sanitized: `swift build --product era --sanitize=X` keeps the product's
# linker flags (-static-stdlib, lld, version script). The library then holds undefined
# __asan_*/__tsan_* references and no runtime; the C test executables are linked by clang with
# -fsanitize=..., which puts the static sanitizer runtime into the executable and exports its
# interface, so libera.so binds to it at load time: no LD_PRELOAD. The statically linked Swift
# runtime inside libera.so is not instrumented (its memory is still checked through the
# malloc/free interceptors). The toolchain's TSan runtime carries libdispatch interceptors, so
# TSan executables also link the toolchain's libdispatch and libBlocksRuntime.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)

SWIFT=${SWIFT:-swift}
swift_path=$(command -v "$SWIFT") || { echo "sanitize: $SWIFT not found"; exit 2; }
toolchain_bin=$(dirname "$(readlink -f "$swift_path")")
CC=${SANITIZE_CC:-$toolchain_bin/clang}
swift_linux_lib=$(readlink -f "$toolchain_bin/../lib/swift/linux")
tsan_filter=${SANITIZE_TSAN_FILTER:-Thread}
c_configs=${SANITIZE_C_CONFIGS:-release}

out=build/sanitize
logs=$out/logs
mkdir -p "$logs"

ASAN_OPTS=halt_on_error=1:detect_leaks=1:abort_on_error=0
UBSAN_OPTS=halt_on_error=1:print_stacktrace=1:report_error_type=1
TSAN_OPTS=halt_on_error=1:second_deadlock_stack=1

# LeakSanitizer and XCTest: swift-corelibs-xctest leaves its test-case, suite-run and case-run
# objects in reference cycles at exit (LSan: 1 direct leak, a weak-reference side table made in
# awaitUsingExpectation, and ~700 indirect ones, all allocated by XCTest itself). Each pattern
# below names the XCTest function that allocated the object; none of them is on the stack while
# a synchronous test body runs, so a leak from libera or from test code is still reported.
# (No pattern may start with '$': LSan reads it as an anchor.)
lsan_supp=$out/lsan-xctest.supp
cat > "$lsan_supp" <<'EOF'
# XCTest's own objects, left in reference cycles at exit (see Tests/sanitize.sh)
leak:awaitUsingExpectation
leak:6XCTest0A4CaseC4name11testClosure
leak:6XCTest0A8SuiteRunC
leak:6XCTest0A7CaseRunC
leak:name11testClosureACSS_y6XCTest
EOF

# Any of these in a run's output fails the run, whatever its exit status.
report_re='ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|ThreadSanitizer: reported|runtime error:|SUMMARY: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer)'

passed=0 failed=0
results=() skipped=()

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# The console filter: drops per-case "ok" lines, XCTest's started/passed lines, measurement
# lines ("# ..." except "# total ..."), SwiftPM's progress lines and gold's export warnings.
quiet() {
    awk '/^ok [0-9]+ - / { next }
         /^Test Case .* (started at|passed \()/ { next }
         /^# / && !/^# total/ { next }
         /^\[[0-9]+\/[0-9]+\] / { next }
         /ld\.gold: warning: Cannot export local symbol/ { next }
         { print; fflush() }'
}

# step KIND NAME COMMAND...: runs COMMAND with its output in $logs/NAME.log and, filtered, on
# the console. KIND "run" is counted in the summary; KIND "build" only counts when it fails.
# Returns 0 when the command succeeded and its output holds no sanitizer report.
step() {
    local kind=$1 name=$2; shift 2
    local log="$logs/$name.log" t0 rc secs why=""
    echo
    echo "== $name"
    echo "+ $*"
    t0=$(now)
    "$@" 2>&1 | tee "$log" | quiet
    rc=${PIPESTATUS[0]}
    secs=$(elapsed "$t0")
    if [ "$rc" -ne 0 ]; then why="exit status $rc"; fi
    if grep -qE "$report_re" "$log"; then why="${why:+$why, }sanitizer report"; fi
    if [ -z "$why" ] && [ "$kind" = run ] && [[ "$name" == swift-* ]] &&
        ! grep -qE 'Executed [1-9][0-9]* tests?, with 0 failures' "$log"; then
        why="no XCTest summary with tests executed"
    fi
    if [ -z "$why" ]; then
        echo "ok - $name (${secs} s)"
        if [ "$kind" = run ]; then passed=$((passed + 1)); results+=("ok      $name  ${secs} s"); fi
        return 0
    fi
    echo "not ok - $name ($why; ${secs} s; log: $log)"
    failed=$((failed + 1))
    results+=("not ok  $name  ${secs} s  ($why)")
    return 1
}

skip() {  # skip NAME REASON
    echo "skip - $1: $2"
    skipped+=("$1: $2")
    results+=("skip    $1")
}

# lib_has_runtime_refs LIB SYMBOL: the library was really instrumented (it imports SYMBOL).
lib_has_runtime_refs() {
    local imports
    imports=$(nm -D --undefined-only "$1") || return 1
    if grep -qw "$2" <<< "$imports"; then return 0; fi
    echo "$1 does not reference $2: not instrumented"
    return 1
}

c_tests() {  # the C test programs
    local f
    for f in Tests/c/test_era.c Tests/c/test_llm.c Tests/c/test_linear.c Tests/c/test_concurrency.c Tests/c/test_overlap.c; do
        [ -f "$f" ] && basename "$f" .c
    done
}

# c_stage SAN CONFIG: builds libera.so with --sanitize=SAN (SAN: address or thread) in
# CONFIG, then builds and runs every C test against it.
c_stage() {
    local san=$1 config=$2 scratch tag bin lib t exe
    local -a cflags ldextra runenv
    case $san in
        address)
            scratch=.build-asan tag=asan-ubsan
            cflags=(-fsanitize=address,undefined -fno-sanitize-recover=all)
            ldextra=()
            runenv=(ASAN_OPTIONS=$ASAN_OPTS UBSAN_OPTIONS=$UBSAN_OPTS) ;;
        thread)
            scratch=.build-tsan tag=tsan
            cflags=(-fsanitize=thread)
            ldextra=(-L"$swift_linux_lib" -ldispatch -lBlocksRuntime -Wl,-rpath,"$swift_linux_lib")
            runenv=(TSAN_OPTIONS=$TSAN_OPTS) ;;
    esac
    step build "libera-$tag-$config" "$SWIFT" build -c "$config" --product era --sanitize="$san" \
        --scratch-path "$scratch" || return
    bin=$("$SWIFT" build -c "$config" --scratch-path "$scratch" --show-bin-path)
    lib=$bin/libera.so
    lib_has_runtime_refs "$lib" "$([ "$san" = address ] && echo __asan_init || echo __tsan_init)" ||
        { failed=$((failed + 1)); results+=("not ok  libera-$tag-$config (not instrumented)"); return; }
    for t in $(c_tests); do
        exe=$out/$t-$tag-$config
        step build "cc-$t-$tag-$config" "$CC" -fuse-ld=lld -std=c11 -O1 -g -fno-omit-frame-pointer \
            "${cflags[@]}" -Wall -Wextra -pthread -I include "Tests/c/$t.c" -L "$bin" -lera -lm \
            -Wl,-rpath,"$bin" "${ldextra[@]}" -o "$exe" || continue
        step run "c-$t-$tag-$config" env "${runenv[@]}" "$exe"
    done
}

stage_asan() {
    step build swift-build-asan "$SWIFT" build --build-tests --sanitize=address --scratch-path .build-asan ||
        return
    step run swift-tests-asan env ASAN_OPTIONS=$ASAN_OPTS \
        LSAN_OPTIONS=suppressions=$root/$lsan_supp:print_suppressions=0 \
        "$SWIFT" test --skip-build --disable-swift-testing --sanitize=address --scratch-path .build-asan
}

stage_ubsan() {
    # Probe first: the swift-driver of a toolchain may refuse -sanitize=undefined for the target.
    local probe=$out/ubsan-probe.swift refusal
    echo > "$probe"
    if ! refusal=$("$toolchain_bin/swiftc" -sanitize=undefined -typecheck "$probe" 2>&1); then
        skip swift-tests-ubsan "swiftc -sanitize=undefined: $(echo "$refusal" | head -1 | sed 's/^error: //')"
        return
    fi
    step build swift-build-ubsan "$SWIFT" build --build-tests --sanitize=undefined --scratch-path .build-ubsan ||
        return
    step run swift-tests-ubsan env UBSAN_OPTIONS=$UBSAN_OPTS \
        "$SWIFT" test --skip-build --disable-swift-testing --sanitize=undefined --scratch-path .build-ubsan
}

stage_c_asan() {
    local config
    for config in $c_configs; do
        case $config in
            debug | release) c_stage address "$config" ;;
            *) echo "sanitize: SANITIZE_C_CONFIGS: unknown configuration '$config'"; failed=$((failed + 1))
               results+=("not ok  c-asan configuration '$config'") ;;
        esac
    done
}

stage_tsan() {
    if step build swift-build-tsan "$SWIFT" build --build-tests --sanitize=thread --scratch-path .build-tsan; then
        step run swift-tests-tsan env TSAN_OPTIONS=$TSAN_OPTS \
            "$SWIFT" test --skip-build --disable-swift-testing --sanitize=thread --scratch-path .build-tsan \
            --filter "$tsan_filter"
    fi
    c_stage thread release
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(asan ubsan c-asan tsan)
for s in "${stages[@]}"; do
    case $s in asan | ubsan | c-asan | tsan) ;; *) echo "sanitize: unknown stage '$s' (asan, ubsan, c-asan, tsan)"; exit 2 ;; esac
done
echo "sanitize: stages ${stages[*]}; swift $swift_path; cc $CC"
t_all=$(now)
for s in "${stages[@]}"; do
    t_stage=$(now)
    case $s in
        asan) stage_asan ;;
        ubsan) stage_ubsan ;;
        c-asan) stage_c_asan ;;
        tsan) stage_tsan ;;
    esac
    echo "-- stage $s: $(elapsed "$t_stage") s"
done

echo
echo "== summary ($(elapsed "$t_all") s)"
for r in "${results[@]}"; do echo "  $r"; done
for s in "${skipped[@]}"; do echo "skipped: $s"; done
echo "sanitize: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
