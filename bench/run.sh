#!/usr/bin/env bash
# `make bench`: the Google Benchmark micro-benchmarks, the MQTT throughput comparison with
# mosquitto_sub, and issue 7's side-by-side suite (billing-exporter against postgres_exporter,
# mqtt2prometheus, psql and nginx), which appends its dated section to bench/RESULTS.md.
# About 25 minutes on 2 cores (most of it postgres_exporter scraping 10,000 tables). Nothing here runs in `make test`.
set -euo pipefail
build_dir=${1:-build}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The peers and the floor are Debian packages only the bench needs.
bash "$here/install-bench-deps.sh"
cmake --build "$build_dir" --target scrape_benchmark mqtt_throughput side_by_side
"$build_dir/bench/scrape_benchmark" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
"$build_dir/bench/mqtt_throughput" --seconds-per-step 3
"$build_dir/bench/side_by_side" --results "$here/RESULTS.md"
