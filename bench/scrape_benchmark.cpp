// Hot paths of a scrape of a 10,000-table sample: what a sample costs once
// (select, serialise, gzip) and what each scrape costs afterwards (hand out the
// prepared page over HTTP). The second must not depend on the database: it
// never touches it.
#include <benchmark/benchmark.h>

#include "exposition.h"
#include "http_server.h"
#include "mqtt_wire.h"
#include "postgres_sample.h"
#include "testbed.h"
#include "usage_ledger.h"

namespace {

using namespace billing::exporter;

CatalogSample MakeSample(int tables) {
  CatalogSample sample;
  sample.database = "sensors";
  sample.database_size_bytes = 1LL << 34;
  for (int i = 0; i < tables; ++i) {
    TableStats t;
    t.schema = i % 10 == 0 ? "tenant_data" : "public";
    t.table = "sensor_readings_" + std::to_string(i);
    t.live_rows = 1000LL * i;
    t.rows_inserted = 1500LL * i;
    t.table_bytes = 8192LL * (i + 1);
    t.index_bytes = 4096LL * (i + 1);
    t.toast_bytes = i % 3 == 0 ? 8192 : 0;
    sample.tables.push_back(std::move(t));
  }
  return sample;
}

TableSelection Uncapped() {
  TableSelection selection;
  selection.max_table_series = 100000;
  return selection;
}

// Once per sample: catalog rows -> families -> text + gzip page.
void BM_PublishSample(benchmark::State& state) {
  const auto sample = MakeSample(static_cast<int>(state.range(0)));
  Exposition exposition({{"customer_id", "abc123"}}, "bench");
  exposition.Register("postgres", std::chrono::seconds(15));
  for (auto _ : state) {
    exposition.Publish("postgres", CatalogFamilies(sample, Uncapped()), true,
                       std::chrono::milliseconds(1), std::chrono::system_clock::now());
  }
  state.counters["page_bytes"] = static_cast<double>(exposition.Current()->text_size);
  state.counters["gzip_bytes"] = static_cast<double>(exposition.Current()->gzip.size());
}
BENCHMARK(BM_PublishSample)->Arg(100)->Arg(10000)->Unit(benchmark::kMillisecond);

// Once per scrape: a full HTTP GET of /metrics over loopback, plain or gzip.
void BM_ServeScrape(benchmark::State& state) {
  const auto sample = MakeSample(static_cast<int>(state.range(0)));
  const bool gzip = state.range(1) != 0;
  Exposition exposition({{"customer_id", "abc123"}}, "bench");
  exposition.Register("postgres", std::chrono::seconds(15));
  exposition.Publish("postgres", CatalogFamilies(sample, Uncapped()), true,
                     std::chrono::milliseconds(1), std::chrono::system_clock::now());
  const int port = billing::testbed::FreePort();
  HttpServer server(HttpOptions{"127.0.0.1:" + std::to_string(port), "", "", std::nullopt},
                    exposition);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  std::vector<std::string> headers;
  if (gzip) headers.push_back("Accept-Encoding: gzip");
  std::size_t bytes = 0;
  for (auto _ : state) {
    const auto response = billing::testbed::HttpGet(url, headers);
    if (response.status != 200) state.SkipWithError("scrape failed");
    bytes = response.body.size();
  }
  state.counters["response_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_ServeScrape)
    ->Args({100, 0})
    ->Args({10000, 0})
    ->Args({10000, 1})
    ->Unit(benchmark::kMicrosecond);

// What a scrape does besides I/O: take a reference to the current page.
void BM_CurrentPage(benchmark::State& state) {
  Exposition exposition({}, "bench");
  exposition.Register("postgres", std::chrono::seconds(15));
  exposition.Publish("postgres", CatalogFamilies(MakeSample(10000), Uncapped()), true,
                     std::chrono::milliseconds(1), std::chrono::system_clock::now());
  for (auto _ : state) benchmark::DoNotOptimize(exposition.Current());
}
BENCHMARK(BM_CurrentPage);

// The MQTT counting path: what the exporter does per message on its client thread once the
// message's group exists (no lock, no allocation). Arg: topic_group_levels; 1 puts all 500 device
// topics in one group, 2 gives each device its own group (500 > the cap of 100: most go to
// "other").
void BM_CountMessage(benchmark::State& state) {
  UsageLedger ledger({}, static_cast<std::size_t>(state.range(0)), 100);
  std::vector<std::string> topics;
  for (int d = 0; d < 500; ++d) topics.push_back("devices/dev-" + std::to_string(d) + "/telemetry");
  std::size_t i = 0;
  for (auto _ : state) {
    ledger.Count(topics[i], 120);
    i = i + 1 == topics.size() ? 0 : i + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CountMessage)->Arg(1)->Arg(2);

// The whole per-message path after the socket read: split a 256 KiB buffer of QoS 0 PUBLISH
// packets (500 device topics, 120-byte payloads) into packets in place, parse each, count it.
void BM_ReadParseCount(benchmark::State& state) {
  std::string stream;
  for (int i = 0; stream.size() < 200 * 1024; ++i) {
    const std::string topic = "devices/dev-" + std::to_string(i % 500) + "/telemetry";
    const std::size_t length = 2 + topic.size() + 120;
    stream += static_cast<char>(0x30);
    stream += static_cast<char>(0x80 | (length % 128));
    stream += static_cast<char>(length / 128);
    stream += static_cast<char>(0);
    stream += static_cast<char>(topic.size());
    stream += topic + std::string(120, 'x');
  }
  billing::exporter::mqtt::PacketReader reader;
  UsageLedger ledger({}, 1, 100);
  std::int64_t messages = 0;
  for (auto _ : state) {
    auto space = reader.Space();
    std::copy(stream.begin(), stream.end(), space.begin());  // stands in for recv()
    reader.Commit(stream.size());
    while (auto packet = reader.Next()) {
      const auto publish = billing::exporter::mqtt::ParsePublish(*packet);
      ledger.Count(publish.topic, publish.payload_size);
      ++messages;
    }
  }
  state.SetItemsProcessed(messages);
}
BENCHMARK(BM_ReadParseCount);

}  // namespace

BENCHMARK_MAIN();
