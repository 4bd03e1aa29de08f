// `make demo`: a private PostgreSQL with a tenant's schema, a writer inserting
// sensor readings the way the platform's API does, and the billing exporter
// sampling it; prints the figures a person cares about until Ctrl-C (or
// --duration), then stops everything it started.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <pqxx/pqxx>
#include <thread>

#include "testbed.h"

namespace {

using namespace std::chrono_literals;
using billing::testbed::ExporterProcess;
using billing::testbed::FindAll;
using billing::testbed::FindValue;
using billing::testbed::MetricSample;
using billing::testbed::PostgresServer;

std::atomic<bool> g_stop{false};

constexpr const char* kSchema = R"sql(
CREATE TABLE devices (
  id serial PRIMARY KEY,
  serial text UNIQUE NOT NULL,
  model text NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE sensor_readings (
  id bigserial PRIMARY KEY,
  device_id int NOT NULL REFERENCES devices(id),
  recorded_at timestamptz NOT NULL DEFAULT now(),
  temperature_c real,
  humidity_pct real,
  payload jsonb
);
CREATE INDEX ON sensor_readings (device_id, recorded_at);
INSERT INTO devices (serial, model)
  SELECT 'SN-' || lpad(g::text, 5, '0'), (ARRAY['th-100', 'th-200', 'aq-10'])[1 + g % 3]
  FROM generate_series(1, 50) g;
)sql";

// Inserts a batch of readings every 100 ms, as the API would from device
// traffic.
void Writer(const std::string& url, int rows_per_second, std::atomic<long>& written) {
  try {
    pqxx::connection connection(url);
    while (!g_stop) {
      pqxx::work tx(connection);
      tx.exec(
          "INSERT INTO sensor_readings (device_id, temperature_c, "
          "humidity_pct, payload) "
          "SELECT 1 + (random() * 49)::int, 15 + random() * 10, 30 + random() "
          "* 40, "
          "jsonb_build_object('fw', '1.4.2', 'rssi', -40 - (random() * "
          "50)::int, 'batt', random()) "
          "FROM generate_series(1, " +
          std::to_string(std::max(1, rows_per_second / 10)) + ")");
      tx.commit();
      written += std::max(1, rows_per_second / 10);
      std::this_thread::sleep_for(100ms);  // pacing the load, not synchronisation
    }
  } catch (const std::exception& e) {
    std::cerr << "writer stopped: " << e.what() << "\n";
  }
}

double Sum(const std::vector<MetricSample>& samples, const std::string& name) {
  double total = 0;
  for (const auto& s : FindAll(samples, name)) total += s.value;
  return total;
}

std::string Bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) {
    b /= 1024;
    ++u;
  }
  char out[32];
  std::snprintf(out, sizeof out, "%.1f %s", b, units[u]);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string exporter_path = "build/exporter/billing-exporter";
  int duration_seconds = 0;  // 0: until Ctrl-C
  int rate = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--exporter")
      exporter_path = argv[i + 1];
    else if (flag == "--duration")
      duration_seconds = std::stoi(argv[i + 1]);
    else if (flag == "--rate")
      rate = std::stoi(argv[i + 1]);
    else {
      std::cerr << "usage: billing-demo [--exporter PATH] [--duration SECONDS] "
                   "[--rate ROWS_PER_S]\n";
      return 2;
    }
  }
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });

  std::cout << "Starting a private PostgreSQL 15 on 127.0.0.1 ..." << std::endl;
  PostgresServer pg;
  pg.CreateDatabase("sensors");
  pg.Psql(kSchema, "sensors");
  std::atomic<long> written{0};
  std::thread writer(Writer, pg.Url("sensors"), rate, std::ref(written));

  ExporterProcess exporter(
      exporter_path, {},
      {{"DATABASE_URL", pg.Url("sensors")}, {"CUSTOMER_ID", "demo"}, {"SAMPLE_INTERVAL", "1s"}});
  if (!exporter.WaitHealthy()) {
    g_stop = true;
    writer.join();
    std::cerr << "the exporter did not start:\n" << exporter.process().Log();
    return 1;
  }
  std::cout << "\nbilling-exporter for customer 'demo' is serving " << exporter.BaseUrl()
            << "/metrics\n"
            << "  browser:    " << exporter.BaseUrl() << "/metrics   (also /healthz, /readyz)\n"
            << "  Prometheus: scrape_configs: [{job_name: billing, "
               "static_configs: [{targets: ['127.0.0.1:"
            << exporter.port() << "']}]}]\n"
            << "  writer:     ~" << rate
            << " sensor readings/s into sensors.public.sensor_readings\n"
            << "Ctrl-C stops everything.\n\n";
  std::printf("%8s  %14s  %12s  %12s  %12s  %10s\n", "time", "rows inserted", "rows/s",
              "table rows", "storage", "pg up");

  const auto start = std::chrono::steady_clock::now();
  double last_inserted = -1;
  auto last_time = start;
  while (!g_stop) {
    std::this_thread::sleep_for(2s);  // display refresh, not synchronisation
    const auto samples = exporter.Scrape();
    const auto now = std::chrono::steady_clock::now();
    const double inserted = Sum(samples, "iotistic_postgres_table_rows_inserted_total");
    const double seconds = std::chrono::duration<double>(now - last_time).count();
    const double per_second = last_inserted < 0 ? 0 : (inserted - last_inserted) / seconds;
    last_inserted = inserted;
    last_time = now;
    std::printf(
        "%7.0fs  %14.0f  %12.1f  %12.0f  %12s  %10.0f\n",
        std::chrono::duration<double>(now - start).count(), inserted, per_second,
        Sum(samples, "iotistic_postgres_table_rows_estimated"),
        Bytes(FindValue(samples, "iotistic_postgres_database_size_bytes").value_or(0)).c_str(),
        FindValue(samples, "iotistic_postgres_up").value_or(0));
    std::fflush(stdout);
    if (duration_seconds > 0 && now - start >= std::chrono::seconds(duration_seconds)) break;
  }
  g_stop = true;
  writer.join();
  std::cout << "\nStopping: the writer wrote " << written << " readings and the exporter counted "
            << std::max(0.0, last_inserted)
            << " rows inserted; exporter, PostgreSQL and their temporary "
            << "data are removed." << std::endl;
  // A run in which the exporter never counted a row is a failure (the smoke
  // test relies on this).
  return last_inserted > 0 ? 0 : 1;
}
