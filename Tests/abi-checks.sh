#!/usr/bin/env bash
# Checks of the C ABI as a C user meets it. Usage: Tests/abi-checks.sh BIN_DIR BUILD_DIR
#   header    era.h compiles warning-free as C99 and C++17 (-Wall -Wextra -Werror -pedantic)
#   symbols   libera.so exports every era_* function of the header and nothing else
#   runtime   libera.so needs no Swift runtime library (static Swift runtime)
#   c-tests   Tests/c/test_era.c, test_llm.c, test_linear.c, test_topk.c, test_truncnorm.c and
#             test_sampled_floor.c: every entry point against
#             float64 references; test_tanh_floor.c: the tanh sampled floor against a
#             quadrature reference, with both kernel choices;
#             test_concurrency.c: concurrent calls give the serial results bit for bit;
#             test_overlap.c: overlapping arrays refused, in-place calls as before;
#             test_fork.c: forks while other threads are inside libera: each child computes
#             on worker threads of its own, bit for bit, and none hangs;
#             test_era, test_llm and test_topk again with ERA_SIMD=0 (the portable kernels, which a
#             processor without AVX2 and FMA runs)
#   install   make install + pkg-config build the README examples, which run
# Ends with the line "abi checks: N passed, M failed".
set -uo pipefail
bin=$1 build=$2
lib="$bin/libera.so"
mkdir -p "$build"
strict=(-Wall -Wextra -Werror -pedantic)
# shellcheck source=Tests/checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

header_c99() { printf '#include "era.h"\nint main(void) { return era_abi_version() == ERA_ABI_VERSION ? 0 : 1; }\n' |
    ${CC:-cc} -std=c99 "${strict[@]}" -I include -x c - -c -o "$build/header_c99.o"; }
header_cxx17() { ${CXX:-c++} -std=c++17 "${strict[@]}" -I include Tests/c/header_cxx.cpp -c -o "$build/header_cxx.o"; }

exports_only_era() {
    local foreign
    foreign=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^era_')
    [ -z "$foreign" ] || { echo "exported symbols outside era_*:"; echo "$foreign" | head; return 1; }
}
exports_every_declared() {
    local declared exported missing
    declared=$(grep -oE '\bera_[a-z0-9_]+\(' include/era.h | tr -d '(' | sort -u)
    exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)
    missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
    [ -z "$missing" ] || { echo "declared but not exported:"; echo "$missing"; return 1; }
}
no_swift_runtime() {
    if ldd "$lib" | grep -i -E 'swift|not found'; then return 1; fi
}

c_test() {  # c_test NAME: build Tests/c/NAME.c against libera.so and run it
    ${CC:-cc} -std=c99 -O2 "${strict[@]}" -pthread -I include "Tests/c/$1.c" -L "$bin" -lera -lm \
        -Wl,-rpath,"$bin" -o "$build/$1" && "$build/$1"
}
c_test_portable() {  # c_test_portable NAME: the same with the vector kernels switched off
    ERA_SIMD=0 c_test "$1"
}

install_and_pkg_config() {
    local prefix name flags
    prefix="$(pwd)/$build/prefix"
    rm -rf "$prefix"
    make --no-print-directory -s install PREFIX="$prefix" >/dev/null || return 1
    flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs era) || return 1
    for name in bound grpo; do
        Tests/readme-example.sh README.md "$name" "$build/readme_$name.c" || return 1
        # shellcheck disable=SC2086
        ${CC:-cc} -std=c99 "${strict[@]}" "$build/readme_$name.c" $flags -o "$build/readme_$name" || return 1
        # Run with an empty environment: only the installed library, no toolchain on any path.
        env -i LD_LIBRARY_PATH="$prefix/lib" "$build/readme_$name" || return 1
    done
}

check "header compiles as C99" header_c99
check "header compiles as C++17" header_cxx17
check "libera.so exports only era_* symbols" exports_only_era
check "libera.so exports every function era.h declares" exports_every_declared
check "libera.so needs no Swift runtime library" no_swift_runtime
check "C tests of the core entry points (Tests/c/test_era.c)" c_test test_era
check "C tests of the LLM entry points (Tests/c/test_llm.c)" c_test test_llm
check "C tests of the fused linear heads (Tests/c/test_linear.c)" c_test test_linear
check "C tests of the top-k log-probabilities (Tests/c/test_topk.c)" c_test test_topk
check "C tests of the truncated-normal policy (Tests/c/test_truncnorm.c)" c_test test_truncnorm
check "C tests of the core entry points, portable kernels (ERA_SIMD=0)" c_test_portable test_era
check "C tests of the LLM entry points, portable kernels (ERA_SIMD=0)" c_test_portable test_llm
check "C tests of the top-k log-probabilities, portable kernels (ERA_SIMD=0)" c_test_portable test_topk
check "eight threads calling every kernel while the thread setting changes (Tests/c/test_concurrency.c)" c_test test_concurrency
check "C tests of the sampled floor and the truncated-normal entropy gradient (Tests/c/test_sampled_floor.c)" c_test test_sampled_floor
check "C tests of the tanh sampled floor and the tanh-Gaussian entropy gradient (Tests/c/test_tanh_floor.c)" c_test test_tanh_floor
check "C tests of the tanh sampled floor, portable kernels (ERA_SIMD=0)" c_test_portable test_tanh_floor
check "overlapping arrays refused with ERA_ERR_OVERLAP, in-place calls unchanged (Tests/c/test_overlap.c)" c_test test_overlap
check "100 forks while two threads are inside libera: children compute with threads of their own (Tests/c/test_fork.c)" c_test test_fork
check "make install + pkg-config build and run the README examples" install_and_pkg_config

echo "abi checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
