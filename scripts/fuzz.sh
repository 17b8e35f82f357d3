#!/usr/bin/env bash
# Fuzzes every reader of what a plugin or a user hands the host
# (docs/fuzzing.md): builds the targets in fuzz/ with libFuzzer and LLVM's
# SanitizerCoverage on stable Rust, then runs each for SECONDS seconds from
# its seeds, its regressions and the corpus earlier runs grew.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    (default: 10 seconds, every target)
#
# Each run starts by replaying every input in fuzz/seeds/TARGET and
# fuzz/regressions/TARGET. A crash, a failed assertion, a hang (over 10 s)
# a run over 2 GiB or one allocation over 64 MiB (fuzz/src/lib.rs) stops the
# script with the input saved in fuzz/artifacts/TARGET. Each target's log and
# a line of its numbers (executions, coverage, CPU time) go to
# fuzz/target/logs/: run one fuzz.sh at a time per target in a checkout.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
setup

seconds=${1:-10}
shift || true
cd fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
fi

# What cargo-fuzz passes with `--sanitizer none`: coverage for libFuzzer,
# comparisons traced, and `cfg(fuzzing)`.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# With the target named, the flags reach only what runs on it, not build
# scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --bins --target "$host"
mkdir -p target/logs artifacts
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "seeds/$target" "regressions/$target" "artifacts/$target"
    log="target/logs/$target.log"
    echo "fuzz: $target for ${seconds}s"
    before=$(ls "artifacts/$target" | wc -l)
    TIMEFORMAT='%U %S'
    if ! { time "target/$host/release/$target" "corpus/$target" "seeds/$target" \
        "regressions/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
        > "$log" 2>&1; } 2> "target/logs/$target.time"; then
        tail -n 40 "$log" >&2
        if [ "$(ls "artifacts/$target" | wc -l)" -gt "$before" ]; then
            echo "fuzz: $target found an input that fails; it is in fuzz/artifacts/$target/" >&2
        else
            echo "fuzz: $target did not run; its log is fuzz/$log" >&2
        fi
        exit 1
    fi
    # libFuzzer's last status line and its final stats.
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
    corpus=$(ls "corpus/$target" | wc -l)
    cpu=$(awk '{ printf "%.0f", $1 + $2 }' "target/logs/$target.time")
    printf '%s runs=%s exec_per_sec=%s cov=%s ft=%s corpus=%s seconds=%s cpu_seconds=%s\n' \
        "$target" "$runs" "$speed" "${cov:-0}" "${ft:-0}" "$corpus" "$seconds" "$cpu" |
        tee "target/logs/$target.summary"
done
