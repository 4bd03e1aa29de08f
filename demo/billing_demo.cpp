// `make demo`: a private PostgreSQL with a tenant's schema, a writer inserting
// sensor readings the way the platform's API does, a Mosquitto with the billing
// plugin and simulated devices (one connection each), and the billing exporter
// in plugin mode; prints the figures a person cares about until Ctrl-C (or
// --duration), then stops the devices first and shows what each sent beside
// what is billed for it, and stops everything it started.
#include <array>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <regex>
#include <sstream>
#include <thread>

#include "testbed.h"

namespace {

using namespace std::chrono_literals;
using billing::testbed::ExporterProcess;
using billing::testbed::FindAll;
using billing::testbed::FindValue;
using billing::testbed::MetricSample;
using billing::testbed::MosquittoServer;
using billing::testbed::ParseSimulatorDevices;
using billing::testbed::PostgresServer;
using billing::testbed::Process;
using billing::testbed::PrometheusServer;
using billing::testbed::SimulatedDevice;
using billing::testbed::Sum;
using billing::testbed::TempDir;

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

// The usage job over the demo's closed 10-second periods, summed per metric: what the invoice
// would say. False when there is no invoice, or it bills no message or no row.
bool PrintInvoiceLines(const std::string& provisioner, const PrometheusServer& prometheus,
                       std::chrono::system_clock::time_point started_at) {
  constexpr std::int64_t kPeriod = 10;
  auto unix = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  // Periods that start after the first scrapes (so they have a baseline) and have ended.
  const std::int64_t from = (unix(started_at) / kPeriod + 1) * kPeriod;
  const std::int64_t to = unix(std::chrono::system_clock::now()) / kPeriod * kPeriod;
  if (to <= from) {
    std::cout << "Run the demo for 30 seconds or more to see invoice lines.\n";
    return false;
  }
  const auto result = billing::testbed::RunCommand(
      {provisioner, "usage", "--prometheus", prometheus.Url(), "--from", std::to_string(from),
       "--to", std::to_string(to), "--period", std::to_string(kPeriod) + "s", "--max-gap", "10s",
       "--customer", "demo"});
  if (result.exit_code != 0) {
    std::cout << "The usage job failed: " << result.output;
    return false;
  }
  std::map<std::string, double> totals;
  bool complete = true;
  std::istringstream lines(result.output);
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) fields.push_back(cell);
    if (fields.size() != 6) continue;
    totals[fields[1]] += std::stod(fields[4]);
    complete = complete && fields[5] == "true";
  }
  std::cout << "\nInvoice lines for customer 'demo', " << (to - from) / kPeriod << " periods of "
            << kPeriod << " s (provisioner usage; "
            << (complete ? "all periods complete" : "some periods incomplete") << "):\n";
  const std::vector<std::pair<std::string, std::string>> kLines = {
      {"mqtt_messages", "MQTT messages received"},
      {"mqtt_bytes", "MQTT payload bytes received"},
      {"rows_inserted", "database rows inserted"},
      {"storage_byte_hours", "storage byte-hours"},
      {"mqtt_connection_minutes", "MQTT connection-minutes"},
      {"mqtt_message_units", "MQTT 5 KB message units"}};
  for (const auto& [metric, label] : kLines) {
    std::printf(metric == "mqtt_connection_minutes" ? "  %-30s %18.3f\n" : "  %-30s %18.0f\n",
                label.c_str(), totals[metric]);
  }
  return totals["mqtt_messages"] > 0 && totals["rows_inserted"] > 0;
}

// What one device sent, from the simulator's per-device lines.

// Sent beside billed, per device and in total; true when every count is equal.
bool PrintReconciliation(const ExporterProcess& exporter,
                         const std::vector<SimulatedDevice>& devices) {
  double total_messages = 0, total_payload = 0, total_units = 0;
  for (const auto& d : devices) {
    total_messages += d.messages;
    total_payload += d.payload;
    total_units += d.units;
  }
  // The plugin publishes every second and the exporter samples every second: wait for the
  // snapshot taken after the last device went.
  std::vector<MetricSample> samples;
  billing::testbed::WaitFor(
      [&] {
        samples = exporter.Scrape();
        return FindValue(samples, "iotistic_mqtt_message_units_total") == total_units &&
               FindValue(samples, "iotistic_mqtt_broker_publish_messages_received_total") ==
                   total_messages;
      },
      15s, 250ms);
  bool equal = true;
  std::printf("\n%-12s %-12s | %9s %9s | %11s %11s | %8s %8s | %9s %9s\n", "device", "user",
              "sent msgs", "billed", "sent bytes", "billed", "units", "billed", "online s",
              "billed");
  for (const auto& d : devices) {
    const std::map<std::string, std::string> labels{{"client_id", d.client_id},
                                                    {"username", d.username}};
    const double messages =
        FindValue(samples, "iotistic_mqtt_client_publish_messages_received_total", labels)
            .value_or(-1);
    const double payload =
        FindValue(samples, "iotistic_mqtt_client_bytes_received_total", labels).value_or(-1);
    const double units =
        FindValue(samples, "iotistic_mqtt_client_message_units_total", labels).value_or(-1);
    const double seconds =
        FindValue(samples, "iotistic_mqtt_client_connection_seconds_total", labels).value_or(-1);
    const bool same = messages == d.messages && payload == d.payload && units == d.units;
    equal = equal && same;
    std::printf("%-12s %-12s | %9.0f %9.0f | %11.0f %11.0f | %8.0f %8.0f | %9.1f %9.1f %s\n",
                d.client_id.c_str(), d.username.c_str(), d.messages, messages, d.payload, payload,
                d.units, units, d.connected_s, seconds, same ? "" : "  <- differs");
  }
  const double messages =
      FindValue(samples, "iotistic_mqtt_broker_publish_messages_received_total").value_or(-1);
  const double payload =
      FindValue(samples, "iotistic_mqtt_broker_bytes_received_total").value_or(-1);
  const double units = FindValue(samples, "iotistic_mqtt_message_units_total").value_or(-1);
  const bool same = messages == total_messages && payload == total_payload && units == total_units;
  equal = equal && same;
  std::printf("%-25s | %9.0f %9.0f | %11.0f %11.0f | %8.0f %8.0f | %s\n", "total", total_messages,
              messages, total_payload, payload, total_units, units,
              equal ? "sent and billed are equal" : "SENT AND BILLED DIFFER");
  return equal;
}

}  // namespace

int main(int argc, char** argv) {
  std::string exporter_path = "build/exporter/billing-exporter";
  std::string simulator_path = "build/tools/device-simulator/device-simulator";
  std::string provisioner_path = "build/provisioner/provisioner";
  std::string plugin_path = "build/exporter/billing_mosquitto_plugin.so";
  int duration_seconds = 0;  // 0: until Ctrl-C
  int rate = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--exporter")
      exporter_path = argv[i + 1];
    else if (flag == "--simulator")
      simulator_path = argv[i + 1];
    else if (flag == "--provisioner")
      provisioner_path = argv[i + 1];
    else if (flag == "--plugin")
      plugin_path = argv[i + 1];
    else if (flag == "--duration")
      duration_seconds = std::stoi(argv[i + 1]);
    else if (flag == "--rate")
      rate = std::stoi(argv[i + 1]);
    else {
      std::cerr << "usage: billing-demo [--exporter PATH] [--simulator PATH] [--provisioner PATH]\n"
                   "  [--plugin PATH] [--duration SECONDS] [--rate ROWS_PER_S]\n";
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

  std::cout << "Starting a private Mosquitto 2.0 with the billing plugin and simulated devices ..."
            << std::endl;
  // The plugin meters inside the broker; the exporter's own connection is not the tenant's.
  MosquittoServer broker(1, "plugin " + plugin_path +
                                "\nplugin_opt_billing_snapshot_interval 1\n"
                                "plugin_opt_billing_unmetered_client_ids billing-exporter-demo\n");
  TempDir dir("billing-demo");
  // Two fleets on their own topic trees, so the per-group breakdown has something to show; every
  // device is its own connection (client id dev-NNNNN), so the bill itemises them.
  std::vector<std::unique_ptr<Process>> fleets;
  const std::vector<std::array<std::string, 4>> kFleets = {{"sensors", "8", "80", "1"},
                                                           {"gateways", "2", "20", "101"}};
  for (const auto& [prefix, devices, rate, first] : kFleets) {
    fleets.push_back(
        std::make_unique<Process>(Process::Options{.argv = {simulator_path,
                                                            "--url",
                                                            broker.Url(),
                                                            "--topic-prefix",
                                                            prefix,
                                                            "--devices",
                                                            devices,
                                                            "--rate",
                                                            rate,
                                                            "--duration",
                                                            "86400",
                                                            "--qos",
                                                            "1",
                                                            "--connections",
                                                            "per-device",
                                                            "--first-device",
                                                            first,
                                                            "--payload-min",
                                                            "100",
                                                            "--payload-max",
                                                            "7000"},
                                                   .env = {},
                                                   .unset_env = {},
                                                   .log_path = dir.path() / (prefix + ".log"),
                                                   .run_as_user = std::nullopt}));
  }

  const auto exporter_config = dir.path() / "exporter.yaml";
  std::ofstream(exporter_config) << "mqtt: {source: plugin, per_client_series: true}\n";
  ExporterProcess exporter(exporter_path, {"--config", exporter_config.string()},
                           {{"DATABASE_URL", pg.Url("sensors")},
                            {"MQTT_URL", broker.Url()},
                            {"CUSTOMER_ID", "demo"},
                            {"SAMPLE_INTERVAL", "1s"}});
  if (!exporter.WaitHealthy()) {
    g_stop = true;
    writer.join();
    std::cerr << "the exporter did not start:\n" << exporter.process().Log();
    return 1;
  }
  // Prometheus keeps the raw samples the usage job bills from at the end.
  PrometheusServer prometheus({"127.0.0.1:" + std::to_string(exporter.port())}, 1s);
  // Billing periods start once Prometheus holds samples (its first scrape takes a few seconds).
  billing::testbed::WaitFor(
      [&] { return prometheus.Query("iotistic_postgres_up").find("\"1\"]") != std::string::npos; },
      30s, 250ms);
  const auto started_at = std::chrono::system_clock::now();

  std::cout << "\nbilling-exporter for customer 'demo' is serving " << exporter.BaseUrl()
            << "/metrics\n"
            << "  browser:    " << exporter.BaseUrl() << "/metrics   (also /healthz, /readyz)\n"
            << "  Prometheus: scrape_configs: [{job_name: billing, "
               "static_configs: [{targets: ['127.0.0.1:"
            << exporter.port() << "']}]}]\n"
            << "  writer:     ~" << rate
            << " sensor readings/s into sensors.public.sensor_readings\n"
            << "  devices:    8 sensors (~80 msg/s) and 2 gateways (~20 msg/s), one connection "
               "each, publishing to "
            << broker.Url() << ",\n              metered by the billing plugin inside the broker\n"
            << "  Prometheus: " << prometheus.Url() << " scrapes it every second\n"
            << "Ctrl-C stops everything and prints the usage so far as invoice lines.\n\n";
  std::printf("%6s %13s %8s %10s %10s | %10s %8s %10s  %s\n", "time", "rows inserted", "rows/s",
              "table rows", "storage", "mqtt msgs", "msgs/s", "bytes/s", "msgs/s per topic group");

  const auto start = std::chrono::steady_clock::now();
  std::optional<std::vector<MetricSample>> previous;
  auto last_time = start;
  double inserted = 0, messages = 0;
  while (!g_stop) {
    std::this_thread::sleep_for(2s);  // display refresh, not synchronisation
    const auto samples = exporter.Scrape();
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last_time).count();
    // Rates from the exporter's own counters between two scrapes, as Prometheus' rate() would.
    auto rate = [&](const std::string& name,
                    const std::map<std::string, std::string>& labels = {}) {
      if (!previous) return 0.0;
      double delta = 0;
      for (const auto& s : FindAll(samples, name, labels)) delta += s.value;
      for (const auto& s : FindAll(*previous, name, labels)) delta -= s.value;
      return delta / seconds;
    };
    inserted = Sum(samples, "iotistic_postgres_table_rows_inserted_total");
    messages = Sum(samples, "iotistic_mqtt_messages_total");
    std::string groups;
    for (const auto& s : FindAll(samples, "iotistic_mqtt_messages_total")) {
      const auto& group = s.labels.at("topic_group");
      char part[64];
      std::snprintf(part, sizeof part, "%s %.0f  ", group.c_str(),
                    rate("iotistic_mqtt_messages_total", {{"topic_group", group}}));
      groups += part;
    }
    std::printf(
        "%5.0fs %13.0f %8.1f %10.0f %10s | %10.0f %8.1f %10s  %s\n",
        std::chrono::duration<double>(now - start).count(), inserted,
        rate("iotistic_postgres_table_rows_inserted_total"),
        Sum(samples, "iotistic_postgres_table_rows_estimated"),
        Bytes(FindValue(samples, "iotistic_postgres_database_size_bytes").value_or(0)).c_str(),
        messages, rate("iotistic_mqtt_messages_total"),
        (Bytes(rate("iotistic_mqtt_payload_bytes_total")) + "/s").c_str(), groups.c_str());
    std::fflush(stdout);
    previous = samples;
    last_time = now;
    if (duration_seconds > 0 && now - start >= std::chrono::seconds(duration_seconds)) break;
  }
  g_stop = true;
  // The devices stop first (Ctrl-C reached them too), so that what they sent is final before it is
  // compared with what is billed.
  std::vector<SimulatedDevice> devices;
  for (auto& fleet : fleets) {
    fleet->Stop(SIGTERM);
    for (auto& d : ParseSimulatorDevices(fleet->Log())) devices.push_back(std::move(d));
  }
  writer.join();
  std::cout << "\nStopped the devices and the writer: the writer wrote " << written
            << " readings and the exporter counted " << inserted
            << " rows inserted. Each device's sent messages, bytes, 5 KB units and time online, "
               "beside what the broker's billing plugin metered:";
  const bool reconciled = PrintReconciliation(exporter, devices);
  messages = FindValue(exporter.Scrape(), "iotistic_mqtt_broker_publish_messages_received_total")
                 .value_or(0);
  const bool billed = PrintInvoiceLines(provisioner_path, prometheus, started_at);
  std::cout << "Exporter, Prometheus, PostgreSQL, Mosquitto and their temporary data are removed."
            << std::endl;
  // A run in which the exporter counted no row or no message, the invoice bills none, or a device
  // was billed other than what it sent, is a failure: the smoke test relies on this exit code.
  if (!(inserted > 0 && messages > 0 && billed && reconciled)) {
    std::cout << "FAILED: nothing was counted or billed, or sent and billed differ\n";
    return 1;
  }
  return 0;
}
