#!/usr/bin/env bash
# Runs every libFuzzer target of BUILD_DIR for SECONDS each, starting from its seed corpus
# (fuzz/corpus/<name>/, never written to: new inputs go to BUILD_DIR/fuzz-work/<name>/), and
# prints executions per second and coverage reached. A crash or a broken property stops the run
# with the input saved under BUILD_DIR/fuzz-artifacts/; once fixed, add it to the seed corpus so
# `make test` replays it.
set -euo pipefail
BUILD_DIR=${1:?build directory}
SECONDS_EACH=${2:-60}
ROOT=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$BUILD_DIR/fuzz-work" "$BUILD_DIR/fuzz-artifacts" "$BUILD_DIR/fuzz-logs"
printf '%-20s %10s %8s %8s %8s\n' target exec/s cov ft corpus
failed=0
for binary in "$BUILD_DIR"/fuzz/fuzz_*; do
  name=$(basename "$binary")
  name=${name#fuzz_}
  work="$BUILD_DIR/fuzz-work/$name"
  log="$BUILD_DIR/fuzz-logs/$name.log"
  mkdir -p "$work"
  # -rss_limit_mb: the targets parse small inputs; more means a leak or a blow-up.
  if ! "$binary" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -rss_limit_mb=2048 \
      -artifact_prefix="$BUILD_DIR/fuzz-artifacts/$name-" "$work" "$ROOT/corpus/$name" \
      >"$log" 2>&1; then
    echo "$name: FAILED, see $log and $BUILD_DIR/fuzz-artifacts/" >&2
    failed=1
    continue
  fi
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
  execs=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log")
  printf '%-20s %10s %8s %8s %8s\n' "$name" "$execs" "$cov" "$ft" "$corp"
done
exit $failed
