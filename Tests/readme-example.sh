#!/usr/bin/env bash
# Writes the C example that README.md shows (the ```c block after the line
# "<!-- readme-example -->") to the file named by $2, so that the tests compile and run exactly
# what the README shows.
set -euo pipefail
readme=$1 out=$2
awk '/<!-- readme-example -->/{armed=1; next} armed && /^```c/{inside=1; next} inside && /^```/{exit} inside{print}' \
    "$readme" > "$out"
[ -s "$out" ] || { echo "error: no C example found in $readme" >&2; exit 1; }
