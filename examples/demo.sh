#!/usr/bin/env bash
# make demo: ERA end to end, on this machine, in about 5 minutes on 2 cores.
#   1. installs libera (header, library, pkg-config file) into build/prefix, and the era Python
#      package plus the examples' packages (examples/requirements.txt) when missing;
#   2. runs every example in its short setting: the C digits classifier (OpenBLAS, built with
#      pkg-config), PyTorch classification, SAC on Pendulum, GRPO on a tiny transformer, and a
#      JAX policy. Each prints its numbers and a verified bound report, and exits non-zero if
#      the bound does not hold, which stops the demo;
#   3. writes out/ (a PNG, a markdown section and a JSON file per example) and joins the
#      sections into out/summary.md.
# Environment: OUT (default out/ in the repository), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${OUT:-$root/out}
case $out in /*) ;; *) out=$root/$out ;; esac
python=${PYTHON:-python3}
prefix=$root/build/prefix
mkdir -p "$out"

echo "== installing libera into $prefix"
make --no-print-directory -s install PREFIX="$prefix" >/dev/null
echo "== the era Python package and the examples' packages (installed when missing)"
EXTRA_REQUIREMENTS=examples/requirements.txt PYTHON=$python bindings/python/ci-test.sh --install

names=()
run() {  # run NAME TITLE COMMAND...: one example, timed
    local name=$1 title=$2 start
    shift 2
    echo
    echo "== $title"
    start=$(date +%s)
    "$@"
    echo "-- $name: $(($(date +%s) - start)) s"
    names+=("$name")
}

run c_digits "C: a softmax classifier with an ERA head on digits (OpenBLAS, pkg-config)" \
    make --no-print-directory -s -C examples/c run PREFIX="$prefix" OUT="$out" PYTHON="$python"
run classification "PyTorch: MLP on digits, baseline / label smoothing / ERA exact and tight" \
    "$python" examples/python/classification/train.py --quick --out "$out"
run continuous_control "PyTorch: SAC with ERA against SAC with temperature tuning, Pendulum" \
    "$python" examples/python/continuous_control/train.py --quick --out "$out"
run llm_grpo "PyTorch: GRPO with and without LLM ERA on a tiny transformer" \
    "$python" examples/python/llm_grpo/train.py --quick --out "$out"
run jax "JAX: a continuous-control policy with era.jax" \
    "$python" examples/jax/train.py --quick --out "$out"

{
    echo "# libera demo: ERA end to end"
    echo
    echo "Written by \`make demo\` (examples/demo.sh), short settings, $(date -u '+%Y-%m-%d %H:%M UTC');"
    echo "libera $("$python" -c 'import era; print(era.version())'). Each section comes from the"
    echo "example's own run; the plots are next to this file."
    for name in "${names[@]}"; do
        echo
        cat "$out/$name.md"
    done
} >"$out/summary.md"
echo
echo "demo: ${#names[@]} examples ran, every bound held; summary in $out/summary.md"
