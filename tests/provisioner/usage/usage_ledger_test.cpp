// The usage job's high-water marks against real PostgreSQL and a real Prometheus serving history
// backfilled with promtool: an outage longer than the look-back is billed from where the job
// stopped, a customer never billed is billed from its creation, and periods older than the
// metrics' retention are reported, not skipped silently. Re-running writes nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "service_metrics.h"
#include "store.h"
#include "testbed.h"
#include "usage_scheduler.h"

namespace {

using namespace billing::testbed;
using billing::provisioner::RunUsageJob;
using billing::provisioner::ServiceMetrics;
using billing::provisioner::Store;
using billing::provisioner::UsageScheduleOptions;

constexpr std::int64_t kHour = 3600;
constexpr std::int64_t kStep = 30;  // seconds between samples

// One broker counter per customer rising by one per sample (120 per hour), with its start time.
std::string History(const std::vector<std::string>& customers, std::int64_t from, std::int64_t to,
                    int per_sample = 1) {
  std::string counter = "# TYPE iotistic_mqtt_broker_publish_messages_received counter\n";
  std::string start = "# TYPE iotistic_mqtt_broker_start_time_seconds gauge\n";
  for (const auto& customer : customers) {
    const std::string labels = "{customer_id=\"" + customer + "\",instance=\"exporter:9090\"}";
    for (std::int64_t t = from, n = 0; t <= to; t += kStep, ++n) {
      counter += "iotistic_mqtt_broker_publish_messages_received_total" + labels + " " +
                 std::to_string(n * per_sample) + " " + std::to_string(t) + "\n";
      start += "iotistic_mqtt_broker_start_time_seconds" + labels + " " +
               std::to_string(from - kHour) + " " + std::to_string(t) + "\n";
    }
  }
  return counter + start + "# EOF\n";
}

std::int64_t Count(const PostgresServer& pg, const std::string& sql) {
  return std::stoll(pg.Psql(sql, "provisioner"));
}

TEST(UsageLedgerTest, HighWaterMarksBackfillOutagesAndReportRetention) {
  const auto now_real = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  const std::int64_t h = now_real / kHour * kHour;
  TempDir dir("usage-ledger");
  BackfillOpenMetrics(History({"acme", "beta", "gamma"}, h - 21 * kHour, h - kHour),
                      dir.path() / "tsdb");
  PrometheusServer prometheus({}, std::chrono::seconds(1), "", dir.path() / "tsdb");
  PostgresServer pg;
  pg.CreateDatabase("provisioner");
  Store store(pg.Url("provisioner"), 2, nullptr);  // migrates
  auto customer = [&](const std::string& id, std::int64_t created_at) {
    pg.Psql(
        "INSERT INTO customers (id, email, company_name, password_hash, plan, created_at) "
        "VALUES ('" +
            id + "', '" + id + "@example.com', '" + id +
            "', '$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA', 'basic', to_timestamp(" +
            std::to_string(created_at) + "))",
        "provisioner");
  };
  // acme: the job last ran 18 hours ago (its mark); gamma: created 6 hours ago, never billed.
  customer("acme", h - 20 * kHour);
  customer("gamma", h - 6 * kHour + 600);
  pg.Psql("INSERT INTO usage_watermarks (customer_id, billed_until) VALUES ('acme', to_timestamp(" +
              std::to_string(h - 18 * kHour) + "))",
          "provisioner");

  pg.Psql(
      "INSERT INTO deployments (customer_id, desired_state, chart_values) VALUES ('acme', "
      "'present', '{}')",
      "provisioner");

  UsageScheduleOptions options;
  options.prometheus_url = prometheus.Url();
  options.period_seconds = kHour;
  options.lookback_seconds = kHour;  // the old job billed only this: one period
  options.settle_seconds = 120;
  options.max_gap_seconds = 300;
  options.retention_seconds = 100 * 24 * kHour;
  options.batch_size = 1;     // one customer per query: the batch matcher is exercised
  options.query_periods = 4;  // and the chunking of a long backfill
  ServiceMetrics metrics;
  const std::int64_t now = h - 2 * kHour + 200;  // the last settled period ends at h - 2h
  const auto report = RunUsageJob(options, pg.Url("provisioner"), store, metrics, now);
  EXPECT_EQ(report.past_retention_periods, 0u);
  EXPECT_EQ(report.backfilled_periods, 15u + 3u);  // acme h-18h..h-3h, gamma h-6h..h-3h

  auto messages = [&](const std::string& id, const std::string& condition) {
    return Count(pg, "SELECT count(*) FROM usage_records WHERE customer_id = '" + id +
                         "' AND metric = 'mqtt_messages' AND " + condition);
  };
  // Every hour since the mark, exactly 120 messages each, complete; nothing before it.
  EXPECT_EQ(messages("acme", "complete AND quantity = 120"), 16);
  EXPECT_EQ(messages("acme", "true"), 16);
  EXPECT_EQ(messages("acme", "period_start < to_timestamp(" + std::to_string(h - 18 * kHour) + ")"),
            0);
  EXPECT_EQ(messages("gamma", "complete AND quantity = 120"), 4);  // h-6h .. h-2h
  EXPECT_EQ(messages("gamma", "true"), 4);
  EXPECT_EQ(Count(pg, "SELECT count(*) FROM usage_watermarks WHERE billed_until = to_timestamp(" +
                          std::to_string(h - 2 * kHour) + ")"),
            2);

  // Re-running the same periods writes nothing: same rows, same computed_at.
  const std::string dump =
      "SELECT customer_id, metric, period_start, quantity, complete, computed_at FROM "
      "usage_records ORDER BY 1, 2, 3";
  const auto before = pg.Psql(dump, "provisioner");
  EXPECT_EQ(RunUsageJob(options, pg.Url("provisioner"), store, metrics, now).changed, 0u);
  EXPECT_EQ(pg.Psql(dump, "provisioner"), before);

  // beta's mark is 15 hours old but the metrics keep only 10: the four periods whose samples are
  // gone are reported and counted, the rest is billed.
  customer("beta", h - 20 * kHour);
  pg.Psql("INSERT INTO usage_watermarks (customer_id, billed_until) VALUES ('beta', to_timestamp(" +
              std::to_string(h - 15 * kHour) + "))",
          "provisioner");
  options.retention_seconds = 10 * kHour;
  const auto limited = RunUsageJob(options, pg.Url("provisioner"), store, metrics, now);
  EXPECT_EQ(limited.past_retention_periods, 4u);                  // h-15h .. h-11h
  EXPECT_EQ(messages("beta", "complete AND quantity = 120"), 9);  // h-11h .. h-2h
  EXPECT_EQ(messages("beta", "period_start < to_timestamp(" + std::to_string(h - 11 * kHour) + ")"),
            0);
  EXPECT_NE(metrics.Serialize().find("iotistic_provisioner_usage_periods_past_retention_total 4"),
            std::string::npos)
      << metrics.Serialize();

  // A fail-over to a replica that saw twice as much: periods that ended more than 10 hours before
  // `now` are final and keep their figure, with the difference as an adjustment; later ones are
  // simply recomputed. Running again adds nothing.
  BackfillOpenMetrics(History({"acme"}, h - 21 * kHour, h - kHour, 2), dir.path() / "replica");
  PrometheusServer replica({}, std::chrono::seconds(1), "", dir.path() / "replica");
  options.prometheus_url = replica.Url();
  options.retention_seconds = 100 * 24 * kHour;
  options.final_after_seconds = 10 * kHour;  // final: periods ending at or before h - 12h
  options.lookback_seconds = 16 * kHour;     // recompute from h - 18h, all acme has
  RunUsageJob(options, pg.Url("provisioner"), store, metrics, now);
  const std::string final_before =
      "period_end <= to_timestamp(" + std::to_string(h - 12 * kHour) + ")";
  EXPECT_EQ(messages("acme", "final AND quantity = 120 AND " + final_before), 6);  // h-18h..h-12h
  EXPECT_EQ(messages("acme", "NOT final AND quantity = 240"), 10);                 // h-12h..h-2h
  EXPECT_EQ(Count(pg,
                  "SELECT count(*) FROM usage_adjustments WHERE customer_id = 'acme' AND "
                  "metric = 'mqtt_messages' AND delta = 120 AND reason <> ''"),
            6);
  const std::string ledger =
      dump +
      "; SELECT customer_id, metric, period_start, delta, created_at FROM usage_adjustments "
      "ORDER BY 1, 2, 3";
  const auto settled = pg.Psql(ledger, "provisioner");
  EXPECT_EQ(RunUsageJob(options, pg.Url("provisioner"), store, metrics, now).changed, 0u);
  EXPECT_EQ(pg.Psql(ledger, "provisioner"), settled);
  // The API's figures carry their adjustments.
  int adjusted = 0;
  for (const auto& r : store.Usage("acme", h - 18 * kHour, h - 2 * kHour)) {
    if (r.metric != "mqtt_messages") continue;
    EXPECT_EQ(r.final, r.period.end <= h - 12 * kHour);
    EXPECT_EQ(r.adjustment, r.final ? 120 : 0);
    adjusted += r.adjustment != 0;
  }
  EXPECT_EQ(adjusted, 6);
  const auto served =
      billing::provisioner::ToJson(store.Usage("acme", h - 18 * kHour, h - 17 * kHour));
  EXPECT_NE(served.find("\"adjustment\": 120"), std::string::npos) << served;

  // What the alerts read: the adjustments, and per customer with a deployment its last complete
  // period.
  const auto page = metrics.Serialize();
  EXPECT_NE(page.find("iotistic_provisioner_usage_adjustments_total 6"), std::string::npos) << page;
  EXPECT_NE(page.find("iotistic_provisioner_usage_last_complete_period_end_timestamp_seconds{"
                      "customer_id=\"acme\"} " +
                      std::to_string(h - 2 * kHour)),
            std::string::npos)
      << page;
  EXPECT_EQ(page.find("last_complete_period_end_timestamp_seconds{customer_id=\"gamma\"}"),
            std::string::npos)
      << "gamma has no deployment";
}

}  // namespace
