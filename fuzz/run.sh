#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer and coverage instrumentation on the stable toolchain,
# then runs each for SECONDS (default 60), starting from fuzz/corpus/TARGET and
# fuzz/regressions/TARGET. A crash, a timeout (10 s per input) or an allocation over the limit
# fails the run and leaves the input in fuzz/artifacts/TARGET/; copy it into
# fuzz/regressions/TARGET/ so `cargo test -p ajar-fuzz` replays it from then on.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(duration address resource_id api_body apply_file desired_state jwt)
fi
# What cargo-fuzz passes, minus the sanitizer (which needs a nightly compiler): SanitizerCoverage
# through LLVM's stable pass and flags, and `--cfg fuzzing`.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
# An explicit --target keeps the flags off build scripts and proc macros (as cargo-fuzz does).
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --bins --target "$host"
bin="target/$host/release"
mkdir -p work
printf '%-14s %12s %10s %8s\n' target execs "execs/s" corpus
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "artifacts/$t" "corpus/$t" "regressions/$t"
  log="work/$t.log"
  if ! "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=512 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="artifacts/$t/" "work/$t" "corpus/$t" "regressions/$t" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz/run.sh: $t failed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  units=$(ls "work/$t" | wc -l)
  printf '%-14s %12s %10s %8s\n' "$t" "$execs" "$rate" "$units"
done
