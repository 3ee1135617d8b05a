#!/usr/bin/env bash
# Fuzzes the simulated API server's request handling (fuzz/, cargo-fuzz and libFuzzer) for a
# bounded time: FUZZ_SECONDS (default 150) of fuzzing after the build.
#
# - New inputs that reach new code go into fuzz/corpus/sim_api_request (commit them to keep them;
#   `cargo test` replays that directory).
# - A crash, a hang (-timeout) or running out of memory fails the script; the input is printed
#   as a hex dump and kept in fuzz/artifacts/sim_api_request/. Copy it into
#   fuzz/regressions/sim_api_request/ with the fix, so `cargo test` replays it from then on.
#
# cargo-fuzz passes unstable -Z flags to rustc: the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1, so no nightly toolchain is needed. cargo-fuzz is installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-150}"
target=sim_api_request
corpus="fuzz/corpus/$target"
artifacts="fuzz/artifacts/$target"

# libFuzzer is C++: cargo-fuzz builds it with the C++ compiler.
command -v c++ >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential
}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz

export RUSTC_BOOTSTRAP=1
# The fuzz crate is a workspace of its own with its own target directory (fuzz/target).
unset CARGO_TARGET_DIR

mkdir -p "$corpus" "$artifacts"
before=$(find "$corpus" -type f | wc -l)
started=$(date +%s)
cargo fuzz build -s none -O "$target"
built=$(date +%s)
echo "fuzz: built in $((built - started)) s; fuzzing for $seconds s"

status=0
cargo fuzz run -s none -O "$target" "$corpus" "fuzz/seeds/$target" -- \
    -dict="fuzz/$target.dict" -max_total_time="$seconds" -timeout=10 -max_len=4096 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    >fuzz/artifacts/run.log 2>&1 || status=$?
after=$(find "$corpus" -type f | wc -l)
tail -n 25 fuzz/artifacts/run.log
echo "fuzz: $((after - before)) new inputs in $corpus ($after in all), $(($(date +%s) - built)) s of fuzzing"

found=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
if [ "$status" -ne 0 ] || [ -n "$found" ]; then
    echo "fuzz: the target failed (exit $status); the full log is fuzz/artifacts/run.log"
    for input in $found; do
        echo "fuzz: failing input $input ($(wc -c <"$input") bytes):"
        od -A x -t x1z -v "$input" | head -n 64
    done
    exit 1
fi
