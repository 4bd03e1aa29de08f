#!/usr/bin/env bash
# `make bench`: runs the Google Benchmark programs. Results are recorded by hand in
# bench/RESULTS.md together with this command and the machine they ran on.
set -euo pipefail
build_dir=${1:-build}
"$build_dir/bench/scrape_benchmark" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
"$build_dir/bench/mqtt_throughput" --seconds-per-step 3
