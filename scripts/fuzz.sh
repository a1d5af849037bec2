#!/usr/bin/env bash
# Bounded coverage-guided fuzzing (cargo fuzz, nightly) of every fuzz target: the inputs that
# once crashed (fuzz/regressions/TARGET) must pass, then FUZZ_SECONDS (default 40) of fuzzing
# per target from seeds made of the corpus captures and the shipped script. A crash fails the
# run and leaves its input in fuzz/artifacts/TARGET: fix it, then keep the input under
# fuzz/regressions/TARGET.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-40}
targets=(frame registry matcher)

cargo +nightly fuzz build
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
"target/$host/release/seeds" "$seeds"
for t in "${targets[@]}"; do
    if [ -d "regressions/$t" ]; then
        cargo +nightly fuzz run "$t" "regressions/$t" -- -runs=0
    fi
    mkdir -p "corpus/$t"
    echo "fuzz: $t for ${secs} s"
    cargo +nightly fuzz run "$t" "corpus/$t" "$seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1 \
        2>&1 | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==|INFO: seed corpus)|panicked|SUMMARY|Test unit written' || true
    # grep hides the progress lines; a crash still fails the run here.
    if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz: $t found a crash: $(ls "artifacts/$t")" >&2
        exit 1
    fi
done
