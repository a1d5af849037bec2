#!/usr/bin/env bash
# Runs every check of the workspace (what .ci/run runs): formatting, clippy, a bounded fuzzing
# run of every fuzz target, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
./scripts/fuzz.sh
# The tests, then one closing line that sums every test binary's result (cargo's own last line
# is that of the last binary, often the doc-tests with nothing to run).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"
