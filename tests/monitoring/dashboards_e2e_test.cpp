// Every query of the Grafana dashboards (dashboards/*.json), with its variables filled in, returns
// data from a real Prometheus that scrapes a real billing-exporter (real PostgreSQL, real
// Mosquitto, simulated devices) through the example scrape job of manifests/prometheus/ and
// evaluates the rules of manifests/prometheus/rules/.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "testbed.h"

namespace {

namespace fs = std::filesystem;
using namespace billing::testbed;
using namespace std::chrono_literals;

constexpr const char* kExporter = BILLING_EXPORTER_PATH;
constexpr const char* kSimulator = BILLING_SIMULATOR_PATH;
constexpr const char* kPython = SYSTEM_PYTHON;
const fs::path kSourceDir = BILLING_SOURCE_DIR;
const fs::path kCheckScript = kSourceDir / "tests/monitoring/monitoring_check.py";
constexpr const char* kCustomer = "acme";

// One query of a dashboard: a panel target or a query variable.
struct DashboardQuery {
  std::string kind;       // "panel" or "variable"
  std::string dashboard;  // file name
  std::string title;      // panel title or variable name
  std::string ref;        // refId, or the label a variable takes its values from
  std::string expr;       // variables substituted
  std::string last_response;
  bool satisfied = false;

  std::string Describe() const {
    return dashboard + ": " + kind + " \"" + title + "\" (" + ref + "): " + expr;
  }
};

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(text);
  while (std::getline(in, field, separator)) fields.push_back(field);
  return fields;
}

std::vector<std::string> DashboardFiles() {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(kSourceDir / "dashboards")) {
    if (entry.path().extension() == ".json") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<DashboardQuery> LoadQueries() {
  std::vector<std::string> argv = {kPython, kCheckScript.string(), "queries", kCustomer};
  const auto files = DashboardFiles();
  argv.insert(argv.end(), files.begin(), files.end());
  const auto result = RunCommand(argv);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  std::vector<DashboardQuery> queries;
  for (const auto& line : Split(result.output, '\n')) {
    const auto fields = Split(line, '\t');
    if (fields.size() != 5) {
      ADD_FAILURE() << "unexpected line from monitoring_check.py queries: " << line;
      continue;
    }
    queries.push_back({fields[0], fields[1], fields[2], fields[3], fields[4], "", false});
  }
  return queries;
}

bool Succeeded(const std::string& body) {
  return body.find("\"status\":\"success\"") != std::string::npos;
}

// An instant query's answer holds at least one series (or a scalar).
bool HasData(const std::string& body) {
  return Succeeded(body) && body.find("\"result\":[]") == std::string::npos;
}

bool Satisfies(const DashboardQuery& query, const std::string& body) {
  if (!HasData(body)) return false;
  // A variable's values must include the customer whose dashboards these are.
  if (query.kind == "variable") {
    return body.find("\"" + query.ref + "\":\"" + kCustomer + "\"") != std::string::npos;
  }
  return true;
}

TEST(DashboardsE2eTest, EveryPanelQueryReturnsData) {
  auto queries = LoadQueries();
  ASSERT_GT(queries.size(), 20u) << "too few dashboard queries: are dashboards/*.json there?";

  // PostgreSQL with a table that data are inserted into while Prometheus watches.
  PostgresServer postgres;
  postgres.Psql(
      "CREATE TABLE readings (id bigserial PRIMARY KEY, device text NOT NULL, value double "
      "precision NOT NULL, payload text);"
      "INSERT INTO readings (device, value, payload) SELECT 'device-' || g % 10, g, "
      "repeat('x', 200) FROM generate_series(1, 1000) g;");
  MosquittoServer broker(/*sys_interval_seconds=*/1, "max_queued_messages 100000\n");

  ExporterProcess exporter(kExporter, {},
                           {{"DATABASE_URL", postgres.Url()},
                            {"MQTT_URL", broker.Url()},
                            {"CUSTOMER_ID", kCustomer},
                            {"SAMPLE_INTERVAL", "1s"}});
  ASSERT_TRUE(exporter.WaitHealthy()) << exporter.process().Log();

  // The example's job (its relabelling unchanged) pointed at this exporter, and the rule files.
  const auto job = RunCommand({kPython, kCheckScript.string(), "scrape-job",
                               (kSourceDir / "manifests/prometheus/prometheus.yml").string(),
                               "127.0.0.1:" + std::to_string(exporter.port()), kCustomer});
  ASSERT_EQ(job.exit_code, 0) << job.output;
  PrometheusServer prometheus({}, 1s, job.output);

  // Devices publish for the whole test; the simulator is stopped when the test ends.
  TempDir dir("monitoring-e2e");
  Process simulator({.argv = {kSimulator, "--url", broker.Url(), "--devices", "5", "--rate", "40",
                              "--duration", "300", "--qos", "1"},
                     .env = {},
                     .unset_env = {},
                     .log_path = dir.path() / "simulator.log",
                     .run_as_user = std::nullopt});

  int batch = 0;
  const bool all = WaitFor(
      [&] {
        postgres.Psql(
            "INSERT INTO readings (device, value) SELECT 'device-' || g % 10, g FROM "
            "generate_series(1, 50) g;");
        ++batch;
        bool done = true;
        for (auto& query : queries) {
          if (query.satisfied) continue;
          query.last_response = prometheus.Query(query.expr);
          query.satisfied = Satisfies(query, query.last_response);
          done = done && query.satisfied;
        }
        return done;
      },
      100s, 1s);

  for (const auto& query : queries) {
    EXPECT_TRUE(query.satisfied) << "no data for " << query.Describe()
                                 << "\nlast response: " << query.last_response;
  }
  EXPECT_TRUE(all);
  EXPECT_TRUE(simulator.Running()) << simulator.Log();

  // The example scrape job's relabelling: the target carries the customer and its namespace, and
  // honor_labels keeps the exporter's own customer_id (no exported_customer_id).
  EXPECT_TRUE(HasData(prometheus.Query(
      "up{job=\"billing-exporter\",customer_id=\"acme\",namespace=\"customer-acme\","
      "service=\"customer-acme-exporter\",pod=\"customer-acme-exporter-0\"} == 1")));
  const std::string renamed =
      prometheus.Query("{job=\"billing-exporter\",exported_customer_id=~\".+\"}");
  EXPECT_TRUE(Succeeded(renamed)) << renamed;
  EXPECT_FALSE(HasData(renamed)) << renamed;

  // Every rule of manifests/prometheus/rules/ was loaded and evaluates without error.
  const auto rules = HttpGet(prometheus.Url() + "/api/v1/rules");
  ASSERT_EQ(rules.status, 200) << rules.body;
  EXPECT_EQ(rules.body.find("\"health\":\"err\""), std::string::npos) << rules.body;
  for (const char* name :
       {"customer_id:iotistic_mqtt_messages_received:increase1h",
        "customer_id:iotistic_postgres_database_size_bytes:avg1h", "BillingExporterDown",
        "BillingExporterSampleStale", "BillingCollectorFailing"}) {
    EXPECT_NE(rules.body.find(std::string("\"") + name + "\""), std::string::npos) << name;
  }
  // Healthy: none of the billing alerts is even pending.
  const std::string alerts = prometheus.Query("ALERTS{alertname=~\"Billing.*\"}");
  EXPECT_TRUE(Succeeded(alerts)) << alerts;
  EXPECT_FALSE(HasData(alerts)) << alerts;

  simulator.Stop(SIGTERM);
  std::cout << queries.size() << " dashboard queries returned data; " << batch
            << " polling rounds\n";
}

}  // namespace
