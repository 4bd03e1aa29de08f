// The usage pipeline end to end: real PostgreSQL, Mosquitto, billing-exporter and Prometheus
// (scraping every second), short periods, a broker restart and an exporter restart in the middle.
// What was published and inserted is billed exactly; storage within 1% of the true integral. The
// same samples scraped by vmagent into VictoriaMetrics give the same bill.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "billing/provisioner/usage.h"
#include "kube_api_double.h"
#include "testbed.h"

namespace {

using namespace billing::testbed;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kExporter = BILLING_EXPORTER_PATH;
constexpr const char* kSimulator = BILLING_SIMULATOR_PATH;
constexpr const char* kProvisioner = BILLING_PROVISIONER_PATH;
constexpr std::int64_t kPeriod = 10;  // seconds
constexpr std::int64_t kMaxGap = 10;

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The value of a single-series instant query (to Prometheus or VictoriaMetrics), or nullopt.
template <typename QueryApi>
std::optional<double> PromValue(const QueryApi& store, const std::string& promql) {
  const json body = json::parse(store.Query(promql));
  const auto& result = body["data"]["result"];
  if (result.size() != 1) return std::nullopt;
  return std::stod(result[0]["value"][1].get<std::string>());
}

using Sent = SimulatorSummary;

Sent Publish(const MosquittoServer& broker, long messages, int seed) {
  const auto result =
      RunCommand({kSimulator, "--url", broker.Url(), "--devices", "20", "--messages",
                  std::to_string(messages), "--qos", "1", "--seed", std::to_string(seed)},
                 {}, 120s);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  const auto sent = ParseSimulatorSummary(result.output);
  if (!sent) ADD_FAILURE() << "no summary from the simulator: " << result.output;
  return sent.value_or(Sent{});
}

// pg_database_size sampled four times a second from the test's own connection: the truth that
// storage byte-hours are compared with.
class SizeRecorder {
 public:
  explicit SizeRecorder(const std::string& url)
      : thread_([this, url](std::stop_token stop) {
          pqxx::connection connection(url);
          const auto deadline = std::chrono::steady_clock::now() + 10min;  // bounded in time
          while (!stop.stop_requested() && std::chrono::steady_clock::now() < deadline) {
            pqxx::nontransaction tx(connection);
            const double size =
                tx.exec("SELECT pg_database_size(current_database())")[0][0].as<double>();
            {
              std::lock_guard lock(mutex_);
              samples_.emplace_back(Now(), size);
            }
            std::this_thread::sleep_for(250ms);  // the sampling rate, not synchronisation
          }
        }) {}
  // Trapezoid integral over [from, to] in byte-hours.
  double ByteHours(double from, double to) {
    std::lock_guard lock(mutex_);
    double area = 0;
    for (std::size_t i = 1; i < samples_.size(); ++i) {
      auto [t0, v0] = samples_[i - 1];
      auto [t1, v1] = samples_[i];
      const double x0 = std::max(t0, from), x1 = std::min(t1, to);
      if (x1 <= x0) continue;
      auto at = [&](double t) { return v0 + (v1 - v0) * (t - t0) / (t1 - t0); };
      area += (x1 - x0) * (at(x0) + at(x1)) / 2;
    }
    return area / 3600;
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<double, double>> samples_;
  std::jthread thread_;
};

template <typename QueryApi>
CommandResult RunUsage(const QueryApi& store, std::int64_t from, std::int64_t to,
                       const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {kProvisioner,   "usage",
                                   "--prometheus", store.Url(),
                                   "--from",       std::to_string(from),
                                   "--to",         std::to_string(to),
                                   "--period",     std::to_string(kPeriod) + "s",
                                   "--max-gap",    std::to_string(kMaxGap) + "s"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunCommand(argv, {}, 120s);
}

// JSON is printed on stdout; stderr (merged by RunCommand) holds one "provisioner:" line at most.
json ParseRecords(const std::string& output) {
  const auto start = output.find('[');
  return json::parse(output.substr(start, output.rfind(']') - start + 1));
}

TEST(UsageE2eTest, ExactBillingAcrossBrokerAndExporterRestarts) {
  PostgresServer pg;
  pg.CreateDatabase("sensors");
  pg.CreateDatabase("provisioner");
  pg.Psql(
      "CREATE TABLE readings (id bigserial PRIMARY KEY, device int, payload text);"
      "INSERT INTO readings (device, payload) SELECT g % 7, md5(g::text) FROM generate_series(1, "
      "100) g;",
      "sensors");
  MosquittoServer broker(1, "max_queued_messages 100000\n");
  const int exporter_port = FreePort();
  const std::vector<std::pair<std::string, std::string>> env = {{"DATABASE_URL", pg.Url("sensors")},
                                                                {"MQTT_URL", broker.Url()},
                                                                {"CUSTOMER_ID", "acme"},
                                                                {"SAMPLE_INTERVAL", "500ms"}};
  auto exporter =
      std::make_unique<ExporterProcess>(kExporter, std::vector<std::string>{}, env, exporter_port);
  ASSERT_TRUE(exporter->WaitHealthy());
  PrometheusServer prometheus({"127.0.0.1:" + std::to_string(exporter_port)}, 1s);
  // Past one Prometheus: vmagent scrapes the same exporter and remote-writes to VictoriaMetrics.
  VictoriaMetricsServer victoria({"127.0.0.1:" + std::to_string(exporter_port)}, 1s);
  SizeRecorder sizes(pg.Url("sensors"));

  const std::string received =
      "iotistic_mqtt_broker_publish_messages_received_total{customer_id=\"acme\"}";
  // A count that no scrape saw before a restart reset it cannot be billed by any scraper, so each
  // step waits until both stores have seen it.
  auto stores_see = [&](const std::string& promql, double value) {
    return WaitFor(
        [&] {
          return PromValue(prometheus, promql) == value && PromValue(victoria, promql) == value;
        },
        60s, 250ms);
  };
  ASSERT_TRUE(stores_see(received, 0)) << exporter->process().Log();
  ASSERT_TRUE(stores_see("iotistic_postgres_up{customer_id=\"acme\"}", 1));

  // The first period starts on the next boundary at least one period away, so it has a baseline.
  const std::int64_t from = (static_cast<std::int64_t>(Now()) / kPeriod + 2) * kPeriod;
  ASSERT_TRUE(WaitFor([&] { return Now() > from + 1; }, 40s));
  auto insert = [&](int rows) {
    pg.Psql(
        "INSERT INTO readings (device, payload) SELECT g % 7, repeat(md5(g::text), 20) FROM "
        "generate_series(1, " +
            std::to_string(rows) + ") g;",
        "sensors");
  };

  const Sent first = Publish(broker, 3000, 1);
  insert(500);
  // Restarts lose nothing that was observed: wait until the stores have seen the totals.
  ASSERT_TRUE(stores_see(received, first.messages));

  const double start_before =
      PromValue(prometheus, "iotistic_mqtt_broker_start_time_seconds").value_or(0);
  broker.Stop();
  broker.Start();
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string start = "iotistic_mqtt_broker_start_time_seconds";
        return PromValue(prometheus, start).value_or(0) > start_before + 2 &&
               PromValue(victoria, start).value_or(0) > start_before + 2;
      },
      60s, 250ms))
      << "the broker restart never showed in the stores";
  const Sent second = Publish(broker, 2000, 2);
  insert(300);
  ASSERT_TRUE(stores_see(received, second.messages));

  exporter->Stop();
  exporter =
      std::make_unique<ExporterProcess>(kExporter, std::vector<std::string>{}, env, exporter_port);
  ASSERT_TRUE(exporter->WaitHealthy());
  const Sent third = Publish(broker, 1500, 3);
  insert(200);
  ASSERT_TRUE(stores_see(received, second.messages + third.messages));
  ASSERT_TRUE(stores_see("iotistic_postgres_rows_inserted_total{customer_id=\"acme\"}",
                         100 + 500 + 300 + 200));

  const std::int64_t to = (static_cast<std::int64_t>(Now()) / kPeriod + 1) * kPeriod;
  ASSERT_TRUE(WaitFor([&] { return Now() > to + kMaxGap + 2; }, 60s));  // samples after the end

  // Only customers in the store are billed: before "acme" exists there, its samples are named
  // and nothing is stored.
  const auto unknown =
      RunUsage(prometheus, from, to, {"--format", "json", "--store", pg.Url("provisioner")});
  ASSERT_EQ(unknown.exit_code, 0) << unknown.output;
  EXPECT_TRUE(ParseRecords(unknown.output).empty()) << unknown.output;
  EXPECT_NE(unknown.output.find("not billed: customer_id \"acme\""), std::string::npos)
      << unknown.output;
  EXPECT_EQ(pg.Psql("SELECT count(*) FROM usage_records", "provisioner"), "0");
  pg.Psql(
      "INSERT INTO customers (id, email, company_name, password_hash, plan) VALUES ('acme', "
      "'ops@acme.example', 'Acme', '$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA', 'basic')",
      "provisioner");

  const auto run =
      RunUsage(prometheus, from, to, {"--format", "json", "--store", pg.Url("provisioner")});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto records = ParseRecords(run.output);
  std::map<std::string, double> totals;
  int incomplete = 0;
  for (const auto& r : records) {
    EXPECT_EQ(r["customer_id"], "acme");
    totals[r["metric"]] += r["quantity"].get<double>();
    if (!r["complete"].get<bool>()) ++incomplete;
  }
  EXPECT_EQ(records.size(), 4u * static_cast<std::size_t>((to - from) / kPeriod));
  EXPECT_EQ(incomplete, 0) << run.output;
  EXPECT_EQ(totals["mqtt_messages"], first.messages + second.messages + third.messages);
  EXPECT_EQ(totals["mqtt_bytes"], first.payload_bytes + second.payload_bytes + third.payload_bytes);
  EXPECT_EQ(totals["rows_inserted"], 500 + 300 + 200);
  const double true_byte_hours =
      sizes.ByteHours(static_cast<double>(from), static_cast<double>(to));
  EXPECT_NEAR(totals["storage_byte_hours"], true_byte_hours, true_byte_hours * 0.01);

  // The same job against VictoriaMetrics, fed by vmagent's own scrapes, bills the same window
  // exactly too: every period, complete, with the published and inserted totals. Per period a
  // count may sit in the neighbouring one when it happened between the two scrapers' scrapes of
  // a boundary (each scrapes at its own instant in the second); the sums cannot differ.
  const std::string last_sample =
      "timestamp(iotistic_mqtt_broker_publish_messages_received_total{customer_id=\"acme\"})";
  ASSERT_TRUE(WaitFor([&] { return PromValue(victoria, last_sample).value_or(0) > to + kMaxGap; },
                      30s, 250ms))
      << "VictoriaMetrics never received the samples after the window";
  const auto on_victoria = RunUsage(victoria, from, to, {"--format", "json"});
  ASSERT_EQ(on_victoria.exit_code, 0) << on_victoria.output;
  std::set<std::pair<std::string, std::string>> prometheus_periods;
  const auto period_of = [](const json& r) {
    return std::pair{r["metric"].get<std::string>(), r["period_start"].get<std::string>()};
  };
  for (const auto& r : records) prometheus_periods.insert(period_of(r));
  std::set<std::pair<std::string, std::string>> victoria_periods;
  std::map<std::string, double> victoria_totals;
  for (const auto& r : ParseRecords(on_victoria.output)) {
    EXPECT_EQ(r["customer_id"], "acme");
    EXPECT_TRUE(r["complete"].get<bool>()) << r;
    victoria_periods.insert(period_of(r));
    victoria_totals[r["metric"].get<std::string>()] += r["quantity"].get<double>();
  }
  EXPECT_EQ(victoria_periods, prometheus_periods) << on_victoria.output;
  for (const char* counter : {"mqtt_messages", "mqtt_bytes", "rows_inserted"}) {
    EXPECT_EQ(victoria_totals[counter], totals[counter]) << counter;
  }
  EXPECT_NEAR(victoria_totals["storage_byte_hours"], true_byte_hours, true_byte_hours * 0.01);
  std::cout << "VictoriaMetrics billed the same; the tenant has "
            << PromValue(victoria, "count({customer_id=\"acme\"})").value_or(0)
            << " series (one table, one topic group)\n";

  // What Prometheus' increase() would have billed for the same window, for comparison.
  const auto window = std::to_string(to - from) + "s";
  const auto increase = json::parse(
      prometheus.Query("sum(increase(iotistic_mqtt_broker_publish_messages_received_total[" +
                       window + "] @ " + std::to_string(to) + "))"));
  std::cout << "billed " << totals["mqtt_messages"] << " messages of "
            << first.messages + second.messages + third.messages << " published; increase() says "
            << (increase["data"]["result"].empty()
                    ? std::string("nothing")
                    : increase["data"]["result"][0]["value"][1].get<std::string>())
            << "\n";

  // Re-running changes nothing in usage_records.
  const std::string dump_sql =
      "SELECT customer_id, metric, period_start, period_end, quantity, complete, computed_at FROM "
      "usage_records "
      "ORDER BY 1, 2, 3";
  const auto before = pg.Psql(dump_sql, "provisioner");
  EXPECT_EQ(std::count(before.begin(), before.end(), '\n') + 1, static_cast<long>(records.size()));
  const auto again =
      RunUsage(prometheus, from, to, {"--format", "csv", "--store", pg.Url("provisioner")});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(
      again.output.find("0 of " + std::to_string(records.size()) + " rows inserted or changed"),
      std::string::npos)
      << again.output;
  EXPECT_EQ(pg.Psql(dump_sql, "provisioner"), before);

  // Periods of another length over the same time would be billed twice: the store refuses them.
  const std::int64_t from20 = (from + 19) / 20 * 20;
  if (from20 + 20 <= to) {
    std::vector<std::string> argv = {kProvisioner,   "usage",
                                     "--prometheus", prometheus.Url(),
                                     "--from",       std::to_string(from20),
                                     "--to",         std::to_string(from20 + 20),
                                     "--period",     "20s",
                                     "--max-gap",    "10s",
                                     "--store",      pg.Url("provisioner")};
    const auto overlap = RunCommand(argv, {}, 60s);
    EXPECT_EQ(overlap.exit_code, 1) << overlap.output;
    EXPECT_NE(overlap.output.find("overlaps"), std::string::npos) << overlap.output;
    EXPECT_EQ(pg.Psql(dump_sql, "provisioner"), before);
  }

  // A customer with no data is marked incomplete, never billed as a confident zero.
  const auto nobody = RunUsage(prometheus, from, to, {"--format", "json", "--customer", "nobody"});
  ASSERT_EQ(nobody.exit_code, 0) << nobody.output;
  for (const auto& r : ParseRecords(nobody.output)) EXPECT_FALSE(r["complete"].get<bool>()) << r;

  // The same job inside `provisioner serve`: it bills the closed periods of its look-back window
  // into its own store, exactly as the command did, and serves them on the usage endpoint.
  pg.CreateDatabase("provisioner_serve");
  TempDir dir("usage-serve");
  const auto key = dir.path() / "signing-key.pem";
  ASSERT_EQ(
      RunCommand({"openssl", "genpkey", "-algorithm", "ed25519", "-out", key.string()}).exit_code,
      0);
  const auto encryption_key = dir.path() / "encryption.key";
  ASSERT_EQ(
      RunCommand({"openssl", "rand", "-hex", "-out", encryption_key.string(), "32"}).exit_code, 0);
  const auto token_key = dir.path() / "token.key";
  ASSERT_EQ(RunCommand({"openssl", "rand", "-out", token_key.string(), "32"}).exit_code, 0);
  KubeApiDouble kube;
  kube.WriteKubeconfig(dir.path() / "kubeconfig");
  const int api_port = FreePort();
  const std::string token = "usage-test-admin-token";
  const auto lookback = static_cast<std::int64_t>(Now()) - from + 2 * kPeriod;
  Process serve(
      Process::Options{{kProvisioner, "serve", "--listen", "127.0.0.1:" + std::to_string(api_port),
                        "--health-listen", "127.0.0.1:" + std::to_string(FreePort())},
                       {{"PROVISIONER_ADMIN_TOKEN", token},
                        {"DATABASE_URL", pg.Url("provisioner_serve")},
                        {"LICENSE_SIGNING_KEY_FILE", key.string()},
                        {"PROVISIONER_ENCRYPTION_KEY_FILE", encryption_key.string()},
                        {"PROVISIONER_TOKEN_KEY_FILE", token_key.string()},
                        {"PROVISIONER_DOMAIN_BASE", "iot.example.com"},
                        {"KUBECONFIG", (dir.path() / "kubeconfig").string()},
                        {"PROMETHEUS_URL", prometheus.Url()},
                        {"PROVISIONER_USAGE_PERIOD", std::to_string(kPeriod) + "s"},
                        {"PROVISIONER_USAGE_LOOKBACK", std::to_string(lookback) + "s"},
                        {"PROVISIONER_USAGE_SETTLE", std::to_string(kMaxGap + 1) + "s"},
                        {"PROVISIONER_USAGE_MAX_GAP", std::to_string(kMaxGap) + "s"},
                        {"PROVISIONER_USAGE_INTERVAL", "1s"}},
                       {},
                       dir.path() / "serve.log",
                       std::nullopt});
  const std::string in_range =
      "SELECT metric, extract(epoch FROM period_start)::bigint, quantity, "
      "complete FROM usage_records WHERE customer_id = 'acme' AND "
      "period_start >= to_timestamp(" +
      std::to_string(from) + ") AND period_end <= to_timestamp(" + std::to_string(to) +
      ") ORDER BY 2, 1";
  const std::string api = "http://127.0.0.1:" + std::to_string(api_port);
  ASSERT_TRUE(
      WaitFor([&] { return !serve.Running() || HttpGet(api + "/healthz").status == 200; }, 30s));
  ASSERT_TRUE(serve.Running()) << serve.Log();
  auto stored_rows = [&] {
    const auto rows = pg.Psql(in_range, "provisioner_serve");
    return rows.empty() ? 0L : static_cast<long>(std::count(rows.begin(), rows.end(), '\n') + 1);
  };
  // Only customers in the provisioner's store are billed: while acme is not one, its samples are
  // counted as an unknown customer and nothing is stored for it.
  auto metric = [&](const std::string& series) -> std::optional<double> {
    const auto page = HttpGet(api + "/metrics").body;
    const auto at = page.find("\n" + series + " ");
    if (at == std::string::npos) return std::nullopt;
    return std::stod(page.substr(at + series.size() + 2));
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        return !serve.Running() ||
               metric("iotistic_provisioner_usage_runs_total{result=\"success\"}").value_or(0) >= 1;
      },
      60s, 250ms));
  EXPECT_EQ(metric("iotistic_provisioner_usage_unknown_customers"), 1.0);
  EXPECT_EQ(stored_rows(), 0) << "a customer the store does not know was billed";
  EXPECT_NE(serve.Log().find("not in the store and are not billed: acme"), std::string::npos)
      << serve.Log();
  // The customer as signup would have created it: from the next run on it is billed.
  pg.Psql(
      "INSERT INTO customers (id, email, company_name, password_hash, plan) VALUES ('acme', "
      "'ops@acme.example', 'Acme', '$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA', 'standard')",
      "provisioner_serve");
  ASSERT_TRUE(WaitFor(
      [&] { return !serve.Running() || stored_rows() == static_cast<long>(records.size()); }, 60s,
      250ms));
  ASSERT_TRUE(serve.Running()) << serve.Log();
  EXPECT_EQ(pg.Psql(in_range, "provisioner_serve"), pg.Psql(in_range, "provisioner"))
      << "the job in serve billed differently from provisioner usage";
  const auto served = HttpGet("http://127.0.0.1:" + std::to_string(api_port) +
                                  "/api/customers/acme/usage?from=" + std::to_string(from) +
                                  "&to=" + std::to_string(to),
                              {"Authorization: Bearer " + token});
  ASSERT_EQ(served.status, 200) << served.body;
  EXPECT_EQ(json::parse(served.body), records);
  const auto metrics = HttpGet("http://127.0.0.1:" + std::to_string(api_port) + "/metrics").body;
  EXPECT_NE(metrics.find("iotistic_provisioner_usage_runs_total{result=\"success\"}"),
            std::string::npos)
      << metrics;
  EXPECT_EQ(metric("iotistic_provisioner_usage_unknown_customers"), 0.0);

  // The billing side invoiced the window: its records become final, through the API.
  const std::string finalize_url = api + "/api/usage/finalize";
  const std::vector<std::string> admin = {"Authorization: Bearer " + token,
                                          "Content-Type: application/json"};
  const auto finalized =
      HttpRequest("POST", finalize_url,
                  json{{"customer_id", "acme"}, {"until", std::to_string(to)}}.dump(), admin);
  ASSERT_EQ(finalized.status, 200) << finalized.body;
  EXPECT_GE(json::parse(finalized.body)["finalized"].get<long>(),
            static_cast<long>(records.size()));
  // Everything up to `to` is final, among it every period of the window.
  EXPECT_EQ(pg.Psql("SELECT count(*) FROM usage_records WHERE customer_id = 'acme' AND NOT final "
                    "AND period_end <= to_timestamp(" +
                        std::to_string(to) + ")",
                    "provisioner_serve"),
            "0");
  EXPECT_EQ(pg.Psql("SELECT count(*) FROM usage_records WHERE customer_id = 'acme' AND final AND "
                    "period_start >= to_timestamp(" +
                        std::to_string(from) + ") AND period_end <= to_timestamp(" +
                        std::to_string(to) + ")",
                    "provisioner_serve"),
            std::to_string(records.size()));
  const auto bad = HttpRequest("POST", finalize_url, R"({"customer_id": "acme"})", admin);
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("until"), std::string::npos) << bad.body;
  EXPECT_EQ(HttpRequest("POST", finalize_url, R"({"customer_id": "acme", "until": 0})").status,
            401);
}

// A row of the fault matrix: Prometheus down for longer than a period and the gap, then
// restarted on its own data. The messages published meanwhile are billed once, in the first
// period after the gap, which is flagged incomplete with the periods of the gap; every period
// Prometheus saw whole is complete.
TEST(UsageE2eTest, PrometheusDownLongerThanAPeriodFlagsTheGapAndLosesNothing) {
  MosquittoServer broker(1, "max_queued_messages 100000\n");
  const int exporter_port = FreePort();
  ExporterProcess exporter(
      kExporter, {},
      {{"MQTT_URL", broker.Url()}, {"CUSTOMER_ID", "acme"}, {"SAMPLE_INTERVAL", "500ms"}},
      exporter_port);
  ASSERT_TRUE(exporter.WaitHealthy());
  const std::vector<std::string> targets = {"127.0.0.1:" + std::to_string(exporter_port)};
  TempDir tsdb("billing-prom-gap");
  auto prometheus = std::make_unique<PrometheusServer>(targets, 1s, "", tsdb.path());
  const std::string received =
      "iotistic_mqtt_broker_publish_messages_received_total{customer_id=\"acme\"}";
  auto sees = [&](double value) {
    return WaitFor([&] { return PromValue(*prometheus, received) == value; }, 60s, 250ms);
  };
  ASSERT_TRUE(sees(0)) << exporter.process().Log();

  const std::int64_t from = (static_cast<std::int64_t>(Now()) / kPeriod + 2) * kPeriod;
  ASSERT_TRUE(WaitFor([&] { return Now() > from + 1; }, 40s));
  const Sent first = Publish(broker, 1000, 1);
  ASSERT_TRUE(sees(first.messages));

  prometheus.reset();
  const double down_at = Now();
  const Sent second = Publish(broker, 1000, 2);
  ASSERT_TRUE(WaitFor([&] { return Now() > down_at + kPeriod + kMaxGap + 2; }, 60s));
  prometheus = std::make_unique<PrometheusServer>(targets, 1s, "", tsdb.path());
  const double up_at = Now();
  ASSERT_TRUE(sees(first.messages + second.messages));
  const double seen_again_at = Now();  // the first sample after the outage is older
  const Sent third = Publish(broker, 500, 3);
  ASSERT_TRUE(sees(first.messages + second.messages + third.messages));

  const std::int64_t to = (static_cast<std::int64_t>(Now()) / kPeriod + 2) * kPeriod;
  ASSERT_TRUE(WaitFor([&] { return Now() > to + kMaxGap + 2; }, 60s));
  const auto run = RunUsage(*prometheus, from, to, {"--format", "json"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  double billed = 0;
  int incomplete = 0;
  for (const auto& r : ParseRecords(run.output)) {
    if (r["metric"] != "mqtt_messages") continue;
    billed += r["quantity"].get<double>();
    const auto start =
        static_cast<double>(*billing::provisioner::ParseTime(r["period_start"].get<std::string>()));
    // From the period of the last sample before the outage to that of the first after it.
    const bool in_gap = start + kPeriod > down_at - 1.5 && start < seen_again_at;
    if (!r["complete"].get<bool>()) {
      ++incomplete;
      EXPECT_TRUE(in_gap) << "incomplete outside the outage: " << r << "\n" << run.output;
    } else {
      EXPECT_FALSE(start + kPeriod > down_at + 1.5 && start < up_at - 1.5)
          << "a period inside the outage is complete: " << r << "\n"
          << run.output;
    }
  }
  EXPECT_EQ(billed, first.messages + second.messages + third.messages) << run.output;
  EXPECT_GE(incomplete, 2) << run.output;  // the outage spans more than one period
}

TEST(UsageCliTest, BadInputGetsAClearErrorNotANumber) {
  const auto check = [](const std::vector<std::string>& args, int code, const std::string& says) {
    std::vector<std::string> argv = {kProvisioner, "usage"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto result = RunCommand(argv);
    EXPECT_EQ(result.exit_code, code) << result.output;
    EXPECT_NE(result.output.find(says), std::string::npos) << result.output;
  };
  const std::string p = "http://127.0.0.1:1";
  check({"--prometheus", p, "--from", "2026-01-01T02:00:00Z", "--to", "2026-01-01T01:00:00Z"}, 2,
        "must be after");
  check({"--prometheus", p, "--from", "2026-01-01T01:30:00Z", "--to", "2026-01-01T03:00:00Z"}, 2,
        "period boundaries");
  check({"--prometheus", p, "--from", "yesterday", "--to", "2026-01-01T03:00:00Z"}, 2, "--from");
  const auto next_hour = (static_cast<std::int64_t>(Now()) / 3600 + 1) * 3600;
  check({"--prometheus", p, "--from", std::to_string(next_hour - 3600), "--to",
         std::to_string(next_hour)},
        2, "future");
  check({"--prometheus", p, "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T01:00:00Z",
         "--period", "soon"},
        2, "--period");
  check({"--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T01:00:00Z"}, 2,
        "--prometheus is required");
  // Nothing listens on port 1: a clear error, exit 1, no records.
  check({"--prometheus", p, "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T01:00:00Z"}, 1,
        "cannot reach Prometheus at http://127.0.0.1:1");
}

}  // namespace
