#!/usr/bin/env bash
# Fuzzes the parsers and validators with cargo-fuzz (libFuzzer, AddressSanitizer): user ids and
# other names, command lines, create forms, the TOML configuration, SSH public keys, nginx routes.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  how long each target runs (default 300; CI runs 20 from scripts/test.sh)
#   TARGET   some of: names command create_request config ssh_key route (default: all)
#
# The corpus of each target is committed under fuzz/corpus/<target>; what a run finds that is
# new is added there. A crash stops the script with the input under fuzz/artifacts/<target>:
# turn it into a regression test (or a corpus entry) once it is fixed.
#
# Only the stable toolchain is needed: cargo-fuzz's unstable compiler flags are allowed with
# RUSTC_BOOTSTRAP=1. scripts/install-deps.sh installs cargo-fuzz when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-300}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(names command create_request config ssh_key route)
fi
case "$seconds" in
    '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a number, not '$seconds'" >&2; exit 2 ;;
esac
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: run scripts/install-deps.sh (or cargo install cargo-fuzz --locked)" >&2
    exit 2
fi

export RUSTC_BOOTSTRAP=1
echo "== fuzz: building the targets (release, AddressSanitizer)"
cargo fuzz build
mkdir -p fuzz/target
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/${target}"
    log="fuzz/target/${target}.log"
    mkdir -p "$corpus"
    echo "== fuzz: ${target} for ${seconds}s"
    # One input may take at most 10 s and 2 GiB; the final stats give executions per second.
    set +e
    cargo fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$log" | sed 's/^/   /' || true
    if [ "$status" -ne 0 ]; then
        echo "fuzz: ${target} failed (exit ${status}); the input is under fuzz/artifacts/${target}/:" >&2
        grep -E -A30 '^==[0-9]+==|panicked|SUMMARY' "$log" | head -60 >&2 || tail -40 "$log" >&2
        exit 1
    fi
done
echo "== fuzz: no crash"
