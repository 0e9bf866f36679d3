#!/usr/bin/env bash
# The Python package's CI, from a fresh clone (run as root or in a virtualenv; idempotent):
#   1. pip-installs what is missing: build tools, numpy, torch, jax[cpu] (pinned), pytest,
#      hypothesis, ml_dtypes;
#   2. builds libera with swift and installs the era package (pip --no-build-isolation);
#   3. runs pytest over Tests/python. pytest's own summary line is the last line printed,
#      and its exit status is the script's, except that 5 (no test collected) is a failure.
# Other arguments go to pytest (e.g. `ci-test.sh -k torch`).
# `ci-test.sh --deps-only` does step 1 alone (for a setup step such as .ci/install-deps);
# `ci-test.sh --install` steps 1 and 2 (what `make bench` and `make demo` need).
# Environment: PYTHON (default python3); EXTRA_REQUIREMENTS, a pip requirements file whose
# specifiers are installed in step 1 too (the examples' examples/requirements.txt); swift
# 5.9+ must be on PATH for the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# Requirements as pip specifiers. JAX is pinned: era.jax's XLA FFI handlers are built against
# the headers of the installed jaxlib (jax.ffi.include_dir()), and 0.10.2 is the last JAX for
# Python 3.11 (the version tested). flatbuffers: jax.export's serialisation (tested).
# JAX is installed before the package is built, so that era._era_xla is built with it.
requirements=(
    "setuptools>=61"
    "wheel"
    "pybind11>=2.10"
    "numpy>=1.22"
    "pytest>=7"
    "hypothesis>=6"
    "ml_dtypes>=0.2"
    "torch>=2.1"
    "jax[cpu]==0.10.2"
    "jaxlib==0.10.2"
    "flatbuffers>=24"
    "scipy>=1.7"  # erf/erfc of era._formulas' truncated normal on numpy arrays (Tests/python/test_formulas.py)
)
if [ -n "${EXTRA_REQUIREMENTS:-}" ]; then
    while read -r line; do
        line=${line%%#*}
        line=$(echo "$line" | tr -d '[:space:]')
        [ -n "$line" ] && requirements+=("$line")
    done < "$EXTRA_REQUIREMENTS"
fi

# The specifiers not satisfied by what is installed (checked offline, with pip's packaging).
missing=$("$python" bindings/python/unmet_requirements.py "${requirements[@]}")
if [ -n "$missing" ]; then
    echo "ci-test: installing $(echo "$missing" | tr '\n' ' ')"
    # shellcheck disable=SC2086
    "$python" -m pip install -q $missing
fi

[ "${1:-}" = "--deps-only" ] && exit 0

command -v swift >/dev/null || { echo "ci-test: swift is not on PATH (building libera needs Swift 5.9+)" >&2; exit 1; }

# A clean build directory, so that no module removed from the sources survives in the wheel.
rm -rf bindings/python/build
echo "ci-test: building libera and installing the era package"
# The distribution was called libera before it became era-activation: remove that one, whose
# files the new one replaces, so that pip does not keep two records of the era package.
if "$python" -c "from importlib import metadata; metadata.version('libera')" 2>/dev/null; then
    "$python" -m pip uninstall -q -y libera
fi
"$python" -m pip install -q --no-build-isolation ./bindings/python
[ "${1:-}" = "--install" ] && exit 0

echo "ci-test: pytest Tests/python (exit status 5, no test collected, fails this script)"
status=0
"$python" -m pytest -p no:cacheprovider Tests/python "$@" || status=$?
if [ "$status" -eq 5 ]; then
    exit 1
fi
exit "$status"
