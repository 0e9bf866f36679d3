# Sourced by the check scripts (Tests/abi-checks.sh, Tests/dist-checks.sh): TAP-like "ok -" /
# "not ok -" / "skip -" lines and their counts, which each script prints at its end.
passed=0 failed=0 skipped=0

check() {  # check NAME COMMAND...: runs the command, reports and counts the result
    local name=$1; shift
    if "$@"; then
        echo "ok - $name"; passed=$((passed + 1))
    else
        echo "not ok - $name"; failed=$((failed + 1))
    fi
}

skip() { echo "skip - $1"; skipped=$((skipped + 1)); }  # skip REASON
