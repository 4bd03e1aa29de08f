#!/usr/bin/env bash
# `make bench`: the Google Benchmark micro-benchmarks, the MQTT throughput comparison with
# mosquitto_sub, and issue 7's side-by-side suite (billing-exporter against postgres_exporter,
# mqtt2prometheus, psql and nginx), which appends its dated section to bench/RESULTS.md, and issue
# 14's reconciler scale run (100 and 1,000 customers against the Kubernetes API test double), which
# appends its own. About 35 minutes on 2 cores (most of it postgres_exporter scraping 10,000 tables). Nothing here runs in `make test`.
set -euo pipefail
build_dir=${1:-build}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The peers and the floor are Debian packages only the bench needs.
bash "$here/install-bench-deps.sh"
cmake --build "$build_dir" --target scrape_benchmark mqtt_throughput side_by_side reconciler_scale
"$build_dir/bench/scrape_benchmark" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
"$build_dir/bench/mqtt_throughput" --seconds-per-step 3
"$build_dir/bench/side_by_side" --results "$here/RESULTS.md"
"$build_dir/bench/reconciler_scale" --results "$here/RESULTS.md"
