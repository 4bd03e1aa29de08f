// The broker plugin's own cost per PUBLISH (Meter::Publish: the connection's slot, the topic group,
// four additions), apart from the broker: what the plugin adds to every message the broker
// receives.
//
//   build/bench/meter_benchmark --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "meter.h"

namespace {

void BM_MeterPublish(benchmark::State& state) {
  const auto clients = static_cast<std::size_t>(state.range(0));
  billing::plugin::Meter meter({10000, 1, 100, {}});
  std::vector<int> connections(clients);
  std::vector<std::string> topics;
  for (std::size_t i = 0; i < clients; ++i) {
    meter.Connect(&connections[i], "dev-" + std::to_string(i), "user-" + std::to_string(i), 0);
    topics.push_back("devices/dev-" + std::to_string(i) + "/telemetry");
  }
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(meter.Publish(&connections[i], topics[i], 200));
    if (++i == clients) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MeterPublish)->Arg(10)->Arg(1000)->Arg(10000);

}  // namespace

BENCHMARK_MAIN();
