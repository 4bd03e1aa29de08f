// The fault matrix, PostgreSQL rows: a real PostgreSQL and the exporter, a known number of rows
// written (the ground truth), a fault injected, and afterwards the exact counts and the exporter's
// recovery without a restart. The README's fault table summarises what each test shows.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include "testbed.h"

namespace {

using namespace billing::testbed;
using namespace std::chrono_literals;

constexpr const char* kExporter = BILLING_EXPORTER_PATH;
const std::map<std::string, std::string> kTable = {{"schema", "public"}, {"table", "readings"}};

void Insert(const PostgresServer& pg, int rows) {
  pg.Psql("INSERT INTO readings SELECT generate_series(1, " + std::to_string(rows) + ")");
}

std::optional<double> Value(ExporterProcess& exporter, const std::string& name,
                            const std::map<std::string, std::string>& labels = {}) {
  return FindValue(exporter.Scrape(), name, labels);
}

bool EventuallyValue(ExporterProcess& exporter, const std::string& name,
                     const std::map<std::string, std::string>& labels, double expected,
                     std::chrono::milliseconds timeout = 30s) {
  return WaitFor([&] { return Value(exporter, name, labels) == expected; }, timeout);
}

// Frozen (SIGSTOP) for longer than the statement timeout: the server answers nothing and no
// timeout of the client's fires while the kernel keeps the connection open. Scrapes keep
// answering; iotistic_postgres_up turns 0 once a sample is two intervals overdue, well before
// the statement timeout would; the last sample's timestamp stays where it was. After SIGCONT
// the same connection carries on and the counts are exact.
TEST(PostgresFaultTest, FrozenServerIsDownWithinTwoSampleIntervalsAndRecoversExactly) {
  PostgresServer pg;
  pg.Psql("CREATE TABLE readings (v int)");
  Insert(pg, 1000);
  ExporterProcess exporter(
      kExporter, {},
      {{"DATABASE_URL", pg.Url()}, {"SAMPLE_INTERVAL", "1s"}, {"CUSTOMER_ID", "frozen"}});
  ASSERT_TRUE(exporter.WaitHealthy()) << exporter.process().Log();
  ASSERT_TRUE(
      EventuallyValue(exporter, "iotistic_postgres_table_rows_inserted_total", kTable, 1000));
  ASSERT_EQ(Value(exporter, "iotistic_postgres_up"), 1);

  pg.SignalAll(SIGSTOP);
  const auto stamp_at_freeze = Value(exporter, "iotistic_exporter_last_sample_timestamp_seconds",
                                     {{"collector", "postgres"}});
  ASSERT_TRUE(stamp_at_freeze.has_value());
  const auto frozen_at = std::chrono::steady_clock::now();
  // The statement timeout is 5 s (the default): a bound below it shows that the overdue sample,
  // not a timeout, turned up to 0. Two intervals plus room for a loaded machine.
  const bool down = WaitFor([&] { return Value(exporter, "iotistic_postgres_up") == 0; }, 4500ms);
  const auto took = std::chrono::steady_clock::now() - frozen_at;
  // What a user sees while it is frozen: scrapes answer, up is 0, the sample's age grows.
  const auto during = exporter.Scrape();
  pg.SignalAll(SIGCONT);
  ASSERT_TRUE(down) << "iotistic_postgres_up still 1 while the database is frozen\n"
                    << exporter.process().Log();
  std::cout << "frozen: up 0 after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
  ASSERT_FALSE(during.empty()) << "scrapes kept answering";
  const auto stamp_during = FindValue(during, "iotistic_exporter_last_sample_timestamp_seconds",
                                      {{"collector", "postgres"}});
  // At most the sample that was finishing when the signal arrived is newer.
  EXPECT_LE(stamp_during.value_or(0), *stamp_at_freeze + 1.5);
  EXPECT_NE(exporter.process().Log().find("sample overdue"), std::string::npos);

  // Thawed: up again by itself, and nothing lost or counted twice.
  ASSERT_TRUE(EventuallyValue(exporter, "iotistic_postgres_up", {}, 1)) << exporter.process().Log();
  Insert(pg, 234);
  EXPECT_TRUE(
      EventuallyValue(exporter, "iotistic_postgres_table_rows_inserted_total", kTable, 1234));
  EXPECT_GT(Value(exporter, "iotistic_exporter_last_sample_timestamp_seconds",
                  {{"collector", "postgres"}})
                .value_or(0),
            *stamp_at_freeze);
}

// Killed -9 (every backend with it) and restarted from the crash: PostgreSQL discards its
// statistics after crash recovery, so the counters restart, beside a new server start time (the
// reset is visible to the usage job); the exporter reconnects by itself and counts the rows
// written after the restart exactly.
TEST(PostgresFaultTest, KilledAndRestartedAfterACrashResetsTheCountersVisibly) {
  PostgresServer pg;
  pg.Psql("CREATE TABLE readings (v int)");
  Insert(pg, 500);
  TempDir dir;
  const auto config = dir.path() / "config.yaml";
  std::ofstream(config) << "postgres: {reconnect_backoff_max: 1s, connect_timeout: 2s}\n";
  ExporterProcess exporter(
      kExporter, {"--config", config.string()},
      {{"DATABASE_URL", pg.Url()}, {"SAMPLE_INTERVAL", "300ms"}, {"CUSTOMER_ID", "crash"}});
  ASSERT_TRUE(exporter.WaitHealthy()) << exporter.process().Log();
  ASSERT_TRUE(
      EventuallyValue(exporter, "iotistic_postgres_table_rows_inserted_total", kTable, 500));
  const auto start_before = Value(exporter, "iotistic_postgres_start_time_seconds");
  ASSERT_TRUE(start_before.has_value());

  pg.SignalAll(SIGKILL);
  ASSERT_TRUE(EventuallyValue(exporter, "iotistic_postgres_up", {}, 0));
  EXPECT_EQ(HttpGet(exporter.BaseUrl() + "/metrics").status, 200);
  // Nothing stale is served while it is down: the table's series are gone, not frozen at 500.
  EXPECT_FALSE(Value(exporter, "iotistic_postgres_table_rows_inserted_total", kTable).has_value());

  pg.Start();
  ASSERT_TRUE(EventuallyValue(exporter, "iotistic_postgres_up", {}, 1)) << exporter.process().Log();
  Insert(pg, 77);
  // PostgreSQL's own figure is the ground truth: the 500 before the crash are gone from it.
  EXPECT_EQ(
      std::stod(pg.Psql("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'readings'")),
      77);
  EXPECT_TRUE(EventuallyValue(exporter, "iotistic_postgres_table_rows_inserted_total", kTable, 77));
  // The counter went down, and the server's start time says why: PostgreSQL 15 can leave
  // stats_reset NULL after a crash, so a consumer treats a decrease after a new start time as a
  // reset (docs/DESIGN.md).
  EXPECT_GT(Value(exporter, "iotistic_postgres_start_time_seconds").value_or(0), *start_before);
}

}  // namespace
