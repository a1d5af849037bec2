#!/usr/bin/env bash
# Runs every test of the workspace (what .ci/run runs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all --check
cargo test --workspace --locked
