#!/usr/bin/env bash
# Writes the C example that README.md shows under the line "<!-- readme-example: NAME -->"
# (the ```c block that follows it) to the file OUT, so that the tests compile and run exactly
# what the README shows. Usage: Tests/readme-example.sh README.md NAME OUT
set -euo pipefail
readme=$1 name=$2 out=$3
awk -v marker="<!-- readme-example: $name -->" '$0 == marker {armed=1; next}
    armed && /^```c/ {inside=1; next} inside && /^```/ {exit} inside {print}' "$readme" > "$out"
[ -s "$out" ] || { echo "error: no C example '$name' found in $readme" >&2; exit 1; }
