#!/usr/bin/env bash
# Tests/fuzz/run.sh SECONDS -- build the libFuzzer target Tests/fuzz/fuzz_era.c and run it.
#
#   1. builds libera with AddressSanitizer and libFuzzer coverage counters (swift build
#      --sanitize=address, into the ignored scratch directory Tests/fuzz/.build-fuzz/swift):
#      an uninstrumented libera.so would let its own reads and writes past the caller's
#      arrays go unseen, and would give libFuzzer no feedback from libera's branches;
#   2. builds the fuzzer with clang -O1 -g -fsanitize=fuzzer,address,undefined, linked
#      against that library with an rpath;
#   3. replays every input in Tests/fuzz/regressions/ (crashes found earlier, kept) twice:
#      with the kernels the processor runs, and with the portable ones (ERA_SIMD=0);
#   4. fuzzes for SECONDS seconds (default 60) from the seed corpus Tests/fuzz/corpus/, into
#      a fresh temporary corpus directory, so the committed corpus never grows.
#
# Exits non-zero on any crash, contract violation (abort), sanitizer report, leak or timeout.
# The last line is "fuzz: 1 passed, 0 failed" for a clean run, "fuzz: 0 passed, 1 failed"
# otherwise. Environment: FUZZ_JOBS (parallel fuzzing processes, default 1), CLANG (the
# compiler), FUZZ_LIB=release to link the uninstrumented .build/release/libera.so instead
# (faster, but blind to out-of-bounds accesses inside libera).
set -uo pipefail

seconds=${1:-60}
case $seconds in ''|*[!0-9]*) echo "usage: $0 SECONDS" >&2; exit 2 ;; esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$here/.build-fuzz"
mkdir -p "$out"

finish() {  # finish STATUS MESSAGE
    [ -n "${2:-}" ] && echo "$2"
    if [ "$1" -eq 0 ]; then echo "fuzz: 1 passed, 0 failed"; else echo "fuzz: 0 passed, 1 failed"; fi
    exit "$1"
}

# clang: $CLANG, else the one next to swift (the Swift toolchain ships clang with libFuzzer),
# else clang on PATH.
clang=${CLANG:-}
if [ -z "$clang" ] && command -v swift >/dev/null 2>&1; then
    candidate="$(dirname "$(readlink -f "$(command -v swift)")")/clang"
    [ -x "$candidate" ] && clang=$candidate
fi
if [ -z "$clang" ] && [ -x /opt/swift/usr/bin/clang ]; then clang=/opt/swift/usr/bin/clang; fi
if [ -z "$clang" ] && command -v clang >/dev/null 2>&1; then clang=$(command -v clang); fi
[ -n "$clang" ] || finish 1 "fuzz: no clang found (install the Swift toolchain or set CLANG)"

cd "$root" || finish 1 "fuzz: no repository at $root"
if [ "${FUZZ_LIB:-asan}" = release ]; then
    swift build -c release --product era >/dev/null || finish 1 "fuzz: swift build failed"
    libdir="$root/.build/release"
else
    # With coverage counters in libera itself libFuzzer is guided by libera's branches, not
    # only the harness's (Swift's edge coverage must use inline 8-bit counters: this
    # libFuzzer refuses trace-pc-guard, which Swift's trace-cmp would bring in).
    echo "fuzz: building libera with AddressSanitizer and coverage counters"
    if ! swift build -c release --product era --sanitize=address \
            -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table \
            --scratch-path "$out/swift" >"$out/swift-build.log" 2>&1; then
        echo "fuzz: coverage counters refused; building with AddressSanitizer only"
        swift build -c release --product era --sanitize=address --scratch-path "$out/swift-plain" \
            >>"$out/swift-build.log" 2>&1 ||
            { tail -20 "$out/swift-build.log"; finish 1 "fuzz: swift build --sanitize=address failed"; }
        rm -rf "$out/swift" && ln -s swift-plain "$out/swift"
    fi
    libdir="$out/swift/release"
fi
[ -f "$libdir/libera.so" ] || finish 1 "fuzz: no $libdir/libera.so"

echo "fuzz: compiling Tests/fuzz/fuzz_era.c with $clang"
# gold warns "Cannot export local symbol" for the sanitizer runtime; harmless.
"$clang" -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I include \
    Tests/fuzz/fuzz_era.c -L "$libdir" -lera -lm -Wl,-rpath,"$libdir" -o "$out/fuzz_era" 2>"$out/clang.log"
rc=$?
grep -v "Cannot export local symbol" "$out/clang.log" >&2
[ $rc -eq 0 ] || finish 1 "fuzz: compiling the fuzzer failed"

# detect_leaks: libera must keep no memory after a call; halt_on_error: stop at the first report.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
common=(-timeout=30 -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1)

# 1. The regressions, each input once.
shopt -s nullglob
regressions=("$here"/regressions/*)
regressions=("${regressions[@]/*README*/}")
inputs=()
for f in "${regressions[@]}"; do [ -f "$f" ] && inputs+=("$f"); done
if [ ${#inputs[@]} -gt 0 ]; then
    # Twice: with the kernels this processor runs (the vector ones where it has AVX2 and FMA),
    # and with the portable kernels (ERA_SIMD=0), whose results the harness holds to the same
    # references.
    : >"$out/regressions.log"
    bad=0
    for kernels in default portable; do
        echo "fuzz: replaying ${#inputs[@]} regression inputs, $kernels kernels"
        for f in "${inputs[@]}"; do
            name=${f#"$here"/}
            if [ $kernels = portable ]; then
                ERA_SIMD=0 "$out/fuzz_era" "${common[@]}" -timeout=10 "$f" >"$out/regression.log" 2>&1
            else
                (unset ERA_SIMD; "$out/fuzz_era" "${common[@]}" -timeout=10 "$f") >"$out/regression.log" 2>&1
            fi
            rc=$?
            cat "$out/regression.log" >>"$out/regressions.log"
            if [ $rc -eq 0 ]; then
                echo "ok - $name ($kernels)"
            else
                bad=$((bad + 1))
                why=$(grep -m1 -E "what: |ERROR: (AddressSanitizer|LeakSanitizer)|ALARM: working|runtime error:" "$out/regression.log")
                echo "not ok - $name ($kernels, exit $rc): ${why# *}"
            fi
        done
    done
    [ $bad -eq 0 ] || finish 1 "fuzz: $bad of $((2 * ${#inputs[@]})) regression replays fail; log: $out/regressions.log"
    echo "fuzz: ${#inputs[@]} regression inputs pass with both kernel choices"
fi

# 2. Fuzzing from the seed corpus into a fresh directory.
work=$(mktemp -d "${TMPDIR:-/tmp}/era-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
jobs=${FUZZ_JOBS:-1}
echo "fuzz: fuzzing for $seconds s ($jobs job(s)); crash inputs go to $out/"
if [ "$jobs" -gt 1 ]; then  # fork mode: child processes, one log, stops at the first crash
    "$out/fuzz_era" "${common[@]}" -max_total_time="$seconds" -fork="$jobs" \
        -artifact_prefix="$out/" "$work" "$here/corpus" >"$out/fuzz.log" 2>&1
    rc=$?
else
    "$out/fuzz_era" "${common[@]}" -max_total_time="$seconds" -artifact_prefix="$out/" "$work" "$here/corpus" \
        >"$out/fuzz.log" 2>&1
    rc=$?
fi
grep -E "^#[0-9]+:?[[:space:]]+(INITED|DONE|cov:)|^stat::|Done [0-9]+ runs" "$out/fuzz.log" | tail -12
if [ $rc -ne 0 ] || grep -qE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|CONTRACT VIOLATION|runtime error:" "$out/fuzz.log"; then
    grep -E -A25 "CONTRACT VIOLATION|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:" "$out/fuzz.log" | head -60
    ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* 2>/dev/null
    finish 1 "fuzz: failure (libFuzzer exit $rc); log: $out/fuzz.log. Keep the input under Tests/fuzz/regressions/ once fixed."
fi
finish 0 "fuzz: clean"
