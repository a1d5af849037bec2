#!/usr/bin/env bash
# Runs every check of the workspace (what .ci/run runs): formatting, clippy, a bounded fuzzing
# run of every fuzz target, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
./scripts/fuzz.sh
cargo test --workspace --locked
