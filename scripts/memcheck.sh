#!/usr/bin/env bash
# Runs the in-process mechanisms' integration tests (native and cabi: load,
# call, reload, unload, panics, bad tables and answers, streams, answers of
# SIZE_MAX bytes) under Valgrind's memcheck, which reports any invalid read or
# write, use of an uninitialized value, bad free, or memory definitely lost
# (docs/fuzzing.md).
#
#   scripts/memcheck.sh [FILTER...]    (default: the native and cabi tests)
#
# Exits non-zero if memcheck reports an error or a test fails; its log is
# target/memcheck.log.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
setup

if ! command -v valgrind >/dev/null; then
    echo "valgrind is missing: install it (Debian: apt-get install valgrind)" >&2
    exit 1
fi
filters=("$@")
[ ${#filters[@]} -gt 0 ] || filters=(cabi:: native:: exhaustion::a_cabi_)
# Not the reload under load: memcheck runs one thread at a time, so its three
# threads calling without pause leave the reloading one minutes for each of
# its ten reloads of a 60 MB library. Reloads, by hand and after a panic, are
# in `native::a_panic_is_contained_and_the_manifest_decides_what_follows`.
skips=(--skip native::a_reload_under_load)

cargo build --workspace
build_c target/debug -O2 -Wall -Wextra -Werror
binary=$(cargo test -p outlet-tests --test integration --no-run --message-format=json-render-diagnostics |
    grep '"kind":\["test"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
if [ -z "$binary" ]; then
    echo "memcheck: cargo named no integration test binary" >&2
    exit 1
fi
log=target/memcheck.log
echo "memcheck: $binary ${filters[*]} (log: $log)"
# One test at a time: memcheck runs the threads of a process one by one, and
# `--fair-sched` hands the turn round fairly, so that threads calling a plugin
# without pause do not starve the one that reloads it. Rust's test harness
# leaves its threads' memory to the OS at exit, and dlopen keeps a little per
# library for good: neither is "definitely lost". What is not the code's fault
# is suppressed, each with its reason, in scripts/memcheck.supp. Without
# backtraces: with them, a panic in a Rust plugin has the plugin's own copy of
# std parse its debug info into a cache that its unload leaves behind
# (docs/fuzzing.md).
status=0
RUST_BACKTRACE=0 valgrind --tool=memcheck --fair-sched=yes --keep-debuginfo=yes \
    --num-callers=40 --suppressions=scripts/memcheck.supp --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --track-origins=yes --log-file="$log" \
    "$binary" --test-threads=1 "${filters[@]}" "${skips[@]}" || status=$?
grep -E "ERROR SUMMARY|definitely lost" "$log" | tail -n 2 || true
if [ "$status" -ne 0 ]; then
    echo "memcheck: failed (status $status); see $log" >&2
fi
exit "$status"
