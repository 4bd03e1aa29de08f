// The billing-exporter binary against a real PostgreSQL 15: values equal
// PostgreSQL's own answers, counters survive exporter restarts, identifiers are
// escaped, cardinality is capped, and outages are survived without a restart.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <numeric>

#include "testbed.h"

namespace {

using namespace billing::testbed;
using namespace std::chrono_literals;

constexpr const char* kExporter = BILLING_EXPORTER_PATH;

// Shared by the tests that do not stop the server; each test uses its own
// database.
std::unique_ptr<PostgresServer> shared_pg;

class PostgresE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { shared_pg = std::make_unique<PostgresServer>(); }
  static void TearDownTestSuite() { shared_pg.reset(); }

  // A fresh database named after the test.
  std::string NewDatabase() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("t_") + info->name();
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    shared_pg->CreateDatabase(name);
    return name;
  }

  std::unique_ptr<ExporterProcess> StartExporter(
      const std::string& database_url, const std::string& config_yaml = "",
      std::vector<std::pair<std::string, std::string>> env = {}) {
    std::vector<std::string> args;
    if (!config_yaml.empty()) {
      config_path_ = config_dir_.path() / ("config-" + std::to_string(++configs_) + ".yaml");
      std::ofstream(config_path_) << config_yaml;
      args = {"--config", config_path_.string()};
    }
    env.emplace_back("DATABASE_URL", database_url);
    env.emplace_back("CUSTOMER_ID", "abc123");
    env.emplace_back("SAMPLE_INTERVAL", "300ms");
    auto exporter = std::make_unique<ExporterProcess>(kExporter, args, env);
    EXPECT_TRUE(exporter->WaitHealthy()) << exporter->process().Log();
    return exporter;
  }

  TempDir config_dir_;
  std::filesystem::path config_path_;
  int configs_ = 0;
};

double PsqlNumber(const PostgresServer& pg, const std::string& sql, const std::string& db) {
  return std::stod(pg.Psql(sql, db));
}

// pg_total_relation_size of every table in schema public, added up by PostgreSQL.
double PublicTablesBytes(const std::string& db) {
  return PsqlNumber(*shared_pg,
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'r' AND n.nspname = 'public'",
                    db);
}

// Waits until `name{labels}` in a scrape equals `expected()`; both are re-read
// on each poll.
::testing::AssertionResult EventuallyEquals(const ExporterProcess& exporter,
                                            const std::string& name,
                                            const std::map<std::string, std::string>& labels,
                                            const std::function<double()>& expected,
                                            std::chrono::milliseconds timeout = 30s) {
  std::optional<double> seen;
  double want = 0;
  const bool ok = WaitFor(
      [&] {
        want = expected();
        seen = FindValue(exporter.Scrape(), name, labels);
        return seen && *seen == want;
      },
      timeout, 100ms);
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << name << " was " << (seen ? std::to_string(*seen) : "absent") << ", PostgreSQL says "
         << want;
}

TEST_F(PostgresE2eTest, ValuesEqualPostgresOwnAnswers) {
  const auto db = NewDatabase();
  shared_pg->Psql(R"sql(
    CREATE TABLE devices (id serial PRIMARY KEY, name text NOT NULL);
    CREATE TABLE readings (id bigserial PRIMARY KEY, device_id int, payload text);
    CREATE INDEX ON readings (device_id);
    INSERT INTO devices (name) SELECT 'device-' || g FROM generate_series(1, 37) g;
    -- Incompressible payloads large enough to be stored out of line, so TOAST is non-zero.
    INSERT INTO readings (device_id, payload)
      SELECT g % 37, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 200) i)
      FROM generate_series(1, 1234) g;
  )sql",
                  db);
  auto exporter = StartExporter(shared_pg->Url(db), R"(
postgres:
  exact_count: {tables: [public.devices, public.readings], interval: 1s}
)");
  const std::map<std::string, std::string> readings = {{"schema", "public"}, {"table", "readings"}};
  const std::map<std::string, std::string> devices = {{"schema", "public"}, {"table", "devices"}};

  auto size_of = [&](const std::string& expr) {
    return [&, expr] { return PsqlNumber(*shared_pg, "SELECT " + expr, db); };
  };
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows_inserted_total", readings,
                               [] { return 1234; }));
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows_inserted_total", devices,
                               [] { return 37; }));
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows", readings,
                               size_of("count(*) FROM readings")));
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows", devices,
                               size_of("count(*) FROM devices")));
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_database_size_bytes",
                               {{"database", db}},
                               size_of("pg_database_size(current_database())")));
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_tables", {}, [] { return 2; }));

  // table + index + toast = pg_total_relation_size, and each part is what
  // PostgreSQL says it is.
  const auto samples = exporter->Scrape();
  auto part = [&](const char* name) {
    auto labels = readings;
    labels["part"] = name;
    return FindValue(samples, "iotistic_postgres_table_size_bytes", labels).value_or(-1);
  };
  const double total = PsqlNumber(*shared_pg, "SELECT pg_total_relation_size('readings')", db);
  EXPECT_EQ(part("table") + part("index") + part("toast"), total);
  EXPECT_EQ(part("index"), PsqlNumber(*shared_pg, "SELECT pg_indexes_size('readings')", db));
  const double toast = PsqlNumber(*shared_pg,
                                  "SELECT pg_total_relation_size(reltoastrelid) FROM pg_class "
                                  "WHERE oid = 'readings'::regclass",
                                  db);
  EXPECT_EQ(part("toast"), toast);
  EXPECT_GT(toast, 0);
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_up", {{"customer_id", "abc123"}}), 1);

  // Known inserts move the counter by exactly that many.
  shared_pg->Psql(
      "INSERT INTO readings (device_id, payload) SELECT 1, 'x' FROM "
      "generate_series(1, 500)",
      db);
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows_inserted_total", readings,
                               [] { return 1734; }));
  EXPECT_TRUE(
      EventuallyEquals(*exporter, "iotistic_postgres_table_rows", readings, [] { return 1734; }));
}

TEST_F(PostgresE2eTest, ExporterRestartKeepsCountersAndStatsResetIsVisible) {
  const auto db = NewDatabase();
  shared_pg->Psql("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 250);", db);
  const std::map<std::string, std::string> t = {{"schema", "public"}, {"table", "t"}};
  double reset_before = -1;
  {
    auto exporter = StartExporter(shared_pg->Url(db));
    ASSERT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows_inserted_total", t,
                                 [] { return 250; }));
    reset_before = FindValue(exporter->Scrape(), "iotistic_postgres_stats_reset_timestamp_seconds")
                       .value_or(-1);
    EXPECT_EQ(WEXITSTATUS(exporter->Stop()), 0);
  }
  auto exporter = StartExporter(shared_pg->Url(db));
  std::vector<MetricSample> first;
  ASSERT_TRUE(WaitFor(
      [&] {
        first = exporter->Scrape();
        return FindValue(first, "iotistic_postgres_up") == 1;
      },
      20s));
  // The very first sample after the restart continues from where the counter
  // was.
  EXPECT_EQ(FindValue(first, "iotistic_postgres_table_rows_inserted_total", t), 250);
  EXPECT_EQ(FindValue(first, "iotistic_postgres_stats_reset_timestamp_seconds"), reset_before);

  // A statistics reset drops the counter and moves the reset time: a reset is
  // always visible.
  shared_pg->Psql("SELECT pg_stat_reset()", db);
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows_inserted_total", t,
                               [] { return 0; }));
  const auto after =
      FindValue(exporter->Scrape(), "iotistic_postgres_stats_reset_timestamp_seconds").value_or(0);
  EXPECT_GT(after, reset_before);
  EXPECT_NEAR(after,
              PsqlNumber(*shared_pg,
                         "SELECT extract(epoch FROM stats_reset) FROM "
                         "pg_stat_database WHERE datname = current_database()",
                         db),
              1e-3);
}

TEST_F(PostgresE2eTest, AwkwardIdentifiersAreEscapedAndCannotInjectSql) {
  const auto db = NewDatabase();
  const std::string long_name(63, 'L');
  shared_pg->Psql(R"sql(
    CREATE SCHEMA "Tenant Schema";
    CREATE SCHEMA "dot.schema";
    CREATE TABLE victim (x int);
    CREATE TABLE "MixedCase" (x int);
    CREATE TABLE "with space" (x int);
    CREATE TABLE "quo""te" (x int);
    CREATE TABLE "back\slash" (x int);
    CREATE TABLE "dot.schema"."a.b" (x int);
    CREATE TABLE "Tenant Schema"."ünïcødé_表" (x int);
    CREATE TABLE ")sql" +
                      long_name + R"sql(" (x int);
    CREATE TABLE "x""; DROP TABLE victim; --" (x int);
    CREATE TABLE measurements (ts date, v int) PARTITION BY RANGE (ts);
    CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    INSERT INTO "MixedCase" SELECT generate_series(1, 1);
    INSERT INTO "with space" SELECT generate_series(1, 2);
    INSERT INTO "quo""te" SELECT generate_series(1, 3);
    INSERT INTO "back\slash" SELECT generate_series(1, 4);
    INSERT INTO "dot.schema"."a.b" SELECT generate_series(1, 5);
    INSERT INTO "Tenant Schema"."ünïcødé_表" SELECT generate_series(1, 6);
    INSERT INTO ")sql" +
                      long_name + R"sql(" SELECT generate_series(1, 7);
    INSERT INTO "x""; DROP TABLE victim; --" SELECT generate_series(1, 8);
    INSERT INTO measurements SELECT '2026-06-01', generate_series(1, 9);
  )sql",
                  db);
  auto exporter = StartExporter(shared_pg->Url(db), R"(
postgres:
  exact_count:
    interval: 1s
    tables:
      - {schema: public, table: 'x"; DROP TABLE victim; --'}
      - {schema: dot.schema, table: a.b}
      - {schema: Tenant Schema, table: "ünïcødé_表"}
      - public.measurements
)");
  const std::vector<std::tuple<std::string, std::string, double>> expected = {
      {"public", "MixedCase", 1},        {"public", "with space", 2},
      {"public", "quo\"te", 3},          {"public", "back\\slash", 4},
      {"dot.schema", "a.b", 5},          {"Tenant Schema", "ünïcødé_表", 6},
      {"public", long_name, 7},          {"public", "x\"; DROP TABLE victim; --", 8},
      {"public", "measurements_2026", 9}};
  for (const auto& [schema, table, rows] : expected) {
    EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows_inserted_total",
                                 {{"schema", schema}, {"table", table}},
                                 [rows = rows] { return rows; }))
        << schema << "." << table;
  }
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows",
                               {{"schema", "public"}, {"table", "x\"; DROP TABLE victim; --"}},
                               [] { return 8; }));
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows",
                               {{"schema", "dot.schema"}, {"table", "a.b"}}, [] { return 5; }));
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows",
                               {{"schema", "Tenant Schema"}, {"table", "ünïcødé_表"}},
                               [] { return 6; }));
  // A partitioned table counts through its parent; its partitions carry the
  // per-table series.
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_table_rows",
                               {{"schema", "public"}, {"table", "measurements"}},
                               [] { return 9; }));
  EXPECT_EQ(shared_pg->Psql("SELECT count(*) FROM victim", db), "0");
  EXPECT_EQ(FindValue(exporter->Scrape(), "iotistic_exporter_sample_errors_total",
                      {{"collector", "postgres_exact_count"}}),
            0);
}

TEST_F(PostgresE2eTest, TenThousandTablesStayWithinTheCapAndOtherAddsUp) {
  const auto db = NewDatabase();
  shared_pg->Psql(R"sql(
    DO $$
    BEGIN
      FOR i IN 1..10000 LOOP
        EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i);
        -- Commit in batches: one transaction holding 20,000 relation locks exhausts the lock table.
        IF i % 500 = 0 THEN COMMIT; END IF;
      END LOOP;
      FOR i IN 1..300 LOOP
        EXECUTE format('INSERT INTO t%s SELECT g, repeat(''x'', 100) FROM generate_series(1, %s) g', i * 7, i);
      END LOOP;
    END $$;
  )sql",
                  db);
  auto exporter = StartExporter(shared_pg->Url(db), "postgres: {max_table_series: 100}\n");
  const double inserted_total = 300.0 * 301 / 2;
  std::vector<MetricSample> samples;
  ASSERT_TRUE(WaitFor(
      [&] {
        samples = exporter->Scrape();
        double sum = 0;
        for (const auto& s : FindAll(samples, "iotistic_postgres_table_rows_inserted_total"))
          sum += s.value;
        return sum == inserted_total;
      },
      60s))
      << "rows inserted never added up to " << inserted_total;

  EXPECT_EQ(FindValue(samples, "iotistic_postgres_tables"), 10000);
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_rows_inserted_total"), inserted_total);
  for (const char* name :
       {"iotistic_postgres_table_rows_estimated", "iotistic_postgres_table_rows_inserted_total"}) {
    EXPECT_EQ(FindAll(samples, name).size(), 101u) << name;
  }
  EXPECT_EQ(FindAll(samples, "iotistic_postgres_table_size_bytes").size(), 303u);
  ASSERT_TRUE(FindValue(samples, "iotistic_postgres_table_rows_inserted_total",
                        {{"schema", ""}, {"table", "other"}}));

  // Every table's bytes are in exactly one series, the `other` row included.
  EXPECT_EQ(Sum(samples, "iotistic_postgres_table_size_bytes"), PublicTablesBytes(db));
  // The kept tables are the largest: none is smaller than the largest folded
  // into `other`.
  std::map<std::string, double> kept_bytes;
  for (const auto& s : FindAll(samples, "iotistic_postgres_table_size_bytes")) {
    if (s.labels.at("table") != "other") kept_bytes[s.labels.at("table")] += s.value;
  }
  ASSERT_EQ(kept_bytes.size(), 100u);
  double smallest_kept = 1e18;
  for (const auto& [table, bytes] : kept_bytes) smallest_kept = std::min(smallest_kept, bytes);
  EXPECT_GE(smallest_kept, PsqlNumber(*shared_pg,
                                      "SELECT pg_total_relation_size(c.oid) FROM pg_class c "
                                      "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                      "WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER "
                                      "BY 1 DESC OFFSET 100 LIMIT 1",
                                      db));
  EXPECT_GT(smallest_kept, PsqlNumber(*shared_pg, "SELECT pg_total_relation_size('t1')", db));
}

// Every change below reaches the served sizes through change detection alone: size_max_age is far
// beyond the test, so no full sample re-measures the tables. (That idle tables are not measured
// at all is IdleDatabaseIsMeasuredOnlyInFullSamples.)
TEST_F(PostgresE2eTest, SizesFollowWritesIndexesTruncateAndVacuum) {
  const auto db = NewDatabase();
  shared_pg->Psql(R"sql(
    CREATE TABLE grow (id int PRIMARY KEY, v text);
    CREATE TABLE idle_ix (a int, b int);
    INSERT INTO idle_ix SELECT g, g FROM generate_series(1, 5000) g;
    CREATE TABLE trunc (a int, v text);
    INSERT INTO trunc SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g;
    CREATE TABLE shrink (a int, v text) WITH (autovacuum_enabled = off);
    INSERT INTO shrink SELECT g, repeat('y', 200) FROM generate_series(1, 5000) g;
  )sql",
                  db);
  auto exporter = StartExporter(shared_pg->Url(db), "postgres: {size_max_age: 10m}\n");
  auto bytes = [&](const std::string& table, const std::string& part) {
    return EventuallyEquals(
        *exporter, "iotistic_postgres_table_size_bytes",
        {{"schema", "public"}, {"table", table}, {"part", part}}, [&, table, part] {
          const std::string rel = "'public." + table + "'";
          const std::string expr =
              part == "index" ? "pg_indexes_size(" + rel + ")"
                              : "pg_total_relation_size(" + rel + ") - pg_indexes_size(" + rel +
                                    ") - COALESCE(pg_total_relation_size(NULLIF((SELECT "
                                    "reltoastrelid FROM pg_class WHERE oid = " +
                                    rel + "::regclass), 0)), 0)";
          return PsqlNumber(*shared_pg, "SELECT " + expr, db);
        });
  };
  auto current = [&](const std::string& table, const std::string& part) {
    return FindValue(exporter->Scrape(), "iotistic_postgres_table_size_bytes",
                     {{"schema", "public"}, {"table", table}, {"part", part}})
        .value_or(-1);
  };
  for (const char* table : {"grow", "idle_ix", "trunc", "shrink"}) {
    ASSERT_TRUE(bytes(table, "table")) << table;
    ASSERT_TRUE(bytes(table, "index")) << table;
  }

  // (a) INSERTs grow the table and its index.
  const double grow_before = current("grow", "table");
  shared_pg->Psql("INSERT INTO grow SELECT g, repeat('z', 100) FROM generate_series(1, 20000) g",
                  db);
  EXPECT_TRUE(bytes("grow", "table"));
  EXPECT_TRUE(bytes("grow", "index"));
  EXPECT_GT(current("grow", "table"), grow_before);

  // (b) A new index on an otherwise idle table.
  EXPECT_EQ(current("idle_ix", "index"), 0);
  shared_pg->Psql("CREATE INDEX ON idle_ix (b)", db);
  EXPECT_TRUE(bytes("idle_ix", "index"));
  EXPECT_GT(current("idle_ix", "index"), 0);

  // (c) TRUNCATE (a new relfilenode, no row counter moves) and DELETE + VACUUM shrink.
  const double trunc_before = current("trunc", "table");
  shared_pg->Psql("TRUNCATE trunc", db);
  EXPECT_TRUE(bytes("trunc", "table"));
  EXPECT_LT(current("trunc", "table"), trunc_before);
  const double shrink_before = current("shrink", "table");
  shared_pg->Psql("DELETE FROM shrink", db);
  shared_pg->Psql("VACUUM shrink", db);
  EXPECT_TRUE(bytes("shrink", "table"));
  EXPECT_LT(current("shrink", "table"), shrink_before);
}

// The database size, the billing figure, between two pg_database_size measurements (size_max_age
// far beyond the test): it moves by exactly what the relations' files did, new, grown, indexed
// and dropped ones, catalogs and sequences included, so it still equals pg_database_size.
TEST_F(PostgresE2eTest, DatabaseSizeFollowsEveryRelationBetweenItsMeasurements) {
  const auto db = NewDatabase();
  shared_pg->Psql(
      "CREATE TABLE keep (id int PRIMARY KEY); CREATE TABLE gone (v text);"
      "INSERT INTO gone SELECT repeat('g', 100) FROM generate_series(1, 3000);",
      db);
  auto exporter = StartExporter(shared_pg->Url(db), "postgres: {size_max_age: 10m}\n");
  auto database_size = [&] {
    return PsqlNumber(*shared_pg, "SELECT pg_database_size(current_database())", db);
  };
  ASSERT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_database_size_bytes",
                               {{"database", db}}, database_size));
  const double before =
      FindValue(exporter->Scrape(), "iotistic_postgres_database_size_bytes").value_or(0);
  shared_pg->Psql(R"sql(
    CREATE TABLE readings (id bigserial PRIMARY KEY, payload text);
    INSERT INTO readings (payload) SELECT repeat(md5(g::text), 8) FROM generate_series(1, 20000) g;
    CREATE INDEX ON readings (payload);
    INSERT INTO keep SELECT generate_series(1, 5000);
    DROP TABLE gone;
  )sql",
                  db);
  EXPECT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_database_size_bytes",
                               {{"database", db}}, database_size));
  EXPECT_GT(FindValue(exporter->Scrape(), "iotistic_postgres_database_size_bytes").value_or(0),
            before + 5e6);
}

// (d) On an idle database a sample measures nothing, except the full samples, which measure every
// table and come every size_max_age: 100 tables, 300 ms samples, size_max_age 3 s. Checked against
// the samples' own timestamps and durations, whatever the machine's speed: full samples start at
// least size_max_age less one interval apart, and no stretch longer than size_max_age plus the
// longest gap between two samples (and the longest sample) goes without one.
TEST_F(PostgresE2eTest, IdleDatabaseIsMeasuredOnlyInFullSamples) {
  const auto db = NewDatabase();
  shared_pg->Psql(R"sql(
    DO $$ BEGIN FOR i IN 1..100 LOOP
      EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY) WITH (autovacuum_enabled = off)', i);
    END LOOP; END $$;
  )sql",
                  db);
  auto exporter = StartExporter(shared_pg->Url(db), "postgres: {size_max_age: 3s}\n");
  ASSERT_TRUE(EventuallyEquals(*exporter, "iotistic_postgres_tables", {}, [] { return 100; }));
  // The per-sample figures after the first sample, one per distinct sample.
  std::map<double, double> measured_by_sample;
  std::map<double, double> took_by_sample;  // the stamp is when a sample ended: its duration
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  while (measured_by_sample.size() < 21 && std::chrono::steady_clock::now() < deadline) {
    const auto samples = exporter->Scrape();
    const auto stamp = FindValue(samples, "iotistic_exporter_last_sample_timestamp_seconds",
                                 {{"collector", "postgres"}});
    const auto measured = FindValue(samples, "iotistic_postgres_tables_size_measured");
    ASSERT_TRUE(measured) << "no iotistic_postgres_tables_size_measured";
    if (stamp) {
      measured_by_sample[*stamp] = *measured;
      took_by_sample[*stamp] = FindValue(samples, "iotistic_exporter_sample_duration_seconds",
                                         {{"collector", "postgres"}})
                                   .value_or(0);
    }
  }
  ASSERT_GE(measured_by_sample.size(), 21u);
  measured_by_sample.erase(measured_by_sample.begin());  // may be the first, full sample
  double longest_sample = 0;
  for (const auto& [stamp, took] : took_by_sample) longest_sample = std::max(longest_sample, took);
  constexpr double kSizeMaxAge = 3;
  // The exporter decides on its monotonic clock, the stamps are wall-clock: allow their drift.
  constexpr double kClockSlack = 0.05;
  double longest_gap = 0;
  std::vector<double> full_stamps;
  for (auto it = measured_by_sample.begin(); it != measured_by_sample.end(); ++it) {
    const auto& [stamp, measured] = *it;
    EXPECT_TRUE(measured == 0 || measured == 100) << measured << " at " << stamp;
    if (measured == 100) full_stamps.push_back(stamp);
    if (it != measured_by_sample.begin())
      longest_gap = std::max(longest_gap, stamp - std::prev(it)->first);
  }
  const double first = measured_by_sample.begin()->first;
  const double last = measured_by_sample.rbegin()->first;
  ASSERT_GT(last - first, kSizeMaxAge + longest_gap)
      << "the samples span too little time to expect a full sample";
  ASSERT_FALSE(full_stamps.empty()) << "no full sample in " << last - first << " s";
  // A full sample comes when the next sample would find a size older than size_max_age, so one
  // interval early at most; the age counts from when a full sample started, the stamps are when
  // samples ended.
  constexpr double kInterval = 0.3;
  for (std::size_t i = 1; i < full_stamps.size(); ++i) {
    EXPECT_GE(full_stamps[i] - full_stamps[i - 1],
              kSizeMaxAge - kInterval - took_by_sample[full_stamps[i - 1]] - kClockSlack)
        << "full samples at " << full_stamps[i - 1] << " and " << full_stamps[i];
  }
  // No stretch without a full sample longer than size_max_age plus one sample's delay.
  std::vector<double> edges = {first};
  edges.insert(edges.end(), full_stamps.begin(), full_stamps.end());
  edges.push_back(last);
  for (std::size_t i = 1; i < edges.size(); ++i) {
    EXPECT_LE(edges[i] - edges[i - 1], kSizeMaxAge + longest_gap + longest_sample + kClockSlack)
        << "no full sample between " << edges[i - 1] << " and " << edges[i];
  }
  // And what is served is still exact.
  EXPECT_EQ(Sum(exporter->Scrape(), "iotistic_postgres_table_size_bytes"), PublicTablesBytes(db));
}

TEST_F(PostgresE2eTest, GzipAndBasicAuth) {
  const auto db = NewDatabase();
  auto exporter = StartExporter(
      shared_pg->Url(db), "",
      {{"EXPORTER_BASIC_AUTH_USERNAME", "prom"}, {"EXPORTER_BASIC_AUTH_PASSWORD", "s3cret"}});
  const auto url = exporter->BaseUrl() + "/metrics";
  EXPECT_EQ(HttpGet(url).status, 401);
  EXPECT_EQ(HttpGet(url, {"Authorization: Basic cHJvbTp3cm9uZw=="}).status,
            401);  // prom:wrong
  EXPECT_EQ(HttpGet(exporter->BaseUrl() + "/healthz").status, 200);
  const std::string auth = "Authorization: Basic cHJvbTpzM2NyZXQ=";  // prom:s3cret
  HttpResponse plain, gzip;
  ASSERT_TRUE(WaitFor(
      [&] {
        plain = HttpGet(url, {auth});
        gzip = HttpGet(url, {auth, "Accept-Encoding: gzip"});
        return FindValue(ParseMetricsText(plain.body), "iotistic_postgres_up") == 1 &&
               plain.body == Gunzip(gzip.body);
      },
      20s));
  EXPECT_EQ(plain.status, 200);
  EXPECT_EQ(plain.headers.count("content-encoding"), 0u);
  EXPECT_EQ(gzip.headers["content-encoding"], "gzip");
  EXPECT_LT(gzip.body.size(), plain.body.size());
  EXPECT_NE(plain.headers["content-type"].find("version=0.0.4"), std::string::npos);
}

// Idle keep-alive connections hold CivetWeb worker threads; a handful of them must not starve the
// liveness probe (a failed probe restarts the pod).
TEST_F(PostgresE2eTest, IdleConnectionsDoNotStarveHealthz) {
  const auto db = NewDatabase();
  auto exporter = StartExporter(shared_pg->Url(db));
  std::vector<int> sockets;
  for (int i = 0; i < 8; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(exporter->port()));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    const std::string request =
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n";
    ASSERT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
    sockets.push_back(fd);  // answered, then left idle with the connection open
  }
  const auto response = HttpGet(exporter->BaseUrl() + "/healthz", {}, 3s);
  EXPECT_EQ(response.status, 200) << response.error;
  for (int fd : sockets) close(fd);
}

TEST_F(PostgresE2eTest, PromtoolFindsNothingWrong) {
  const auto db = NewDatabase();
  shared_pg->Psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1);", db);
  auto exporter =
      StartExporter(shared_pg->Url(db), "postgres: {exact_count: {tables: [t], interval: 1s}}\n");
  HttpResponse response;
  ASSERT_TRUE(WaitFor(
      [&] {
        response = HttpGet(exporter->BaseUrl() + "/metrics");
        return FindValue(ParseMetricsText(response.body), "iotistic_postgres_table_rows") == 1;
      },
      20s));
  const auto file = config_dir_.path() / "metrics.txt";
  std::ofstream(file) << response.body;
  const auto result = RunCommand({"sh", "-c", "promtool check metrics < '" + file.string() + "'"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "") << result.output;
}

// Own server: this test stops and starts it.
TEST(PostgresOutageTest, DownAtStartThenUpThenDownThenUpWithoutRestart) {
  PostgresServer pg;
  pg.Stop();
  TempDir dir;
  const auto config = dir.path() / "config.yaml";
  std::ofstream(config) << "postgres: {reconnect_backoff_max: 1s, connect_timeout: 2s}\n";
  ExporterProcess exporter(
      kExporter, {"--config", config.string()},
      {{"DATABASE_URL", pg.Url()}, {"SAMPLE_INTERVAL", "300ms"}, {"CUSTOMER_ID", "down1"}});
  ASSERT_TRUE(exporter.WaitHealthy()) << exporter.process().Log();

  auto up = [&] { return FindValue(exporter.Scrape(), "iotistic_postgres_up"); };
  ASSERT_TRUE(WaitFor([&] { return up() == 0.0; }, 20s));
  EXPECT_EQ(HttpGet(exporter.BaseUrl() + "/readyz").status, 503);
  EXPECT_EQ(HttpGet(exporter.BaseUrl() + "/metrics").status, 200);

  pg.Start();
  ASSERT_TRUE(WaitFor([&] { return up() == 1.0; }, 30s)) << exporter.process().Log();
  EXPECT_TRUE(WaitFor([&] { return HttpGet(exporter.BaseUrl() + "/readyz").status == 200; }, 10s));

  pg.Stop();
  ASSERT_TRUE(WaitFor([&] { return up() == 0.0; }, 20s));
  EXPECT_EQ(HttpGet(exporter.BaseUrl() + "/metrics").status, 200);
  const auto errors = FindValue(exporter.Scrape(), "iotistic_exporter_sample_errors_total",
                                {{"collector", "postgres"}});
  EXPECT_GT(errors.value_or(0), 0);

  pg.Start();
  ASSERT_TRUE(WaitFor([&] { return up() == 1.0; }, 30s)) << exporter.process().Log();
  EXPECT_TRUE(exporter.process().Running());

  // The password appears nowhere the exporter writes.
  const auto metrics = HttpGet(exporter.BaseUrl() + "/metrics").body;
  EXPECT_EQ(metrics.find(pg.password()), std::string::npos);
  EXPECT_EQ(WEXITSTATUS(exporter.Stop()), 0) << exporter.process().Log();
  const auto log = exporter.process().Log();
  EXPECT_NE(log.find("cannot connect"), std::string::npos) << log;
  EXPECT_EQ(log.find(pg.password()), std::string::npos) << log;
}

TEST(PostgresOutageTest, WrongPasswordIsReportedWithoutLeakingIt) {
  PostgresServer pg;
  std::string url = pg.Url();
  const auto at = url.find(pg.password());
  ASSERT_NE(at, std::string::npos);
  url.replace(at, pg.password().size(), "Wr0ngPassw0rd");
  ExporterProcess exporter(kExporter, {}, {{"DATABASE_URL", url}, {"SAMPLE_INTERVAL", "300ms"}});
  ASSERT_TRUE(exporter.WaitHealthy());
  ASSERT_TRUE(
      WaitFor([&] { return FindValue(exporter.Scrape(), "iotistic_postgres_up") == 0.0; }, 20s));
  ASSERT_TRUE(WaitFor(
      [&] {
        return exporter.process().Log().find("password authentication failed") != std::string::npos;
      },
      20s))
      << exporter.process().Log();
  EXPECT_EQ(exporter.process().Log().find("Wr0ngPassw0rd"), std::string::npos);
  EXPECT_EQ(HttpGet(exporter.BaseUrl() + "/metrics").body.find("Wr0ngPassw0rd"), std::string::npos);
}

}  // namespace

namespace {

using namespace billing::testbed;
using namespace std::chrono_literals;

// A table locked by a customer's long ALTER/VACUUM FULL never makes a scrape wait, and no longer
// takes the sample down: the catalog query takes no lock on user tables, and a table that cannot
// be measured keeps its last exact sizes until it can be (size_max_age 0: every sample tries).
TEST(PostgresSlowDatabaseTest, ALockedTableKeepsItsLastSizesAndScrapesNeverWait) {
  PostgresServer pg;
  pg.Psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1);");
  TempDir dir;
  const auto config = dir.path() / "config.yaml";
  std::ofstream(config) << "postgres: {statement_timeout: 1s, size_max_age: 0s}\n";
  ExporterProcess exporter(BILLING_EXPORTER_PATH, {"--config", config.string()},
                           {{"DATABASE_URL", pg.Url()}, {"SAMPLE_INTERVAL", "200ms"}});
  ASSERT_TRUE(exporter.WaitHealthy());
  const std::map<std::string, std::string> t_table = {{"table", "t"}, {"part", "table"}};
  ASSERT_TRUE(WaitFor(
      [&] {
        const auto s = exporter.Scrape();
        return FindValue(s, "iotistic_postgres_up") == 1.0 &&
               FindValue(s, "iotistic_postgres_tables_size_measured") == 1.0;
      },
      20s));
  const double size_before =
      FindValue(exporter.Scrape(), "iotistic_postgres_table_size_bytes", t_table).value_or(-1);
  EXPECT_EQ(size_before, std::stod(pg.Psql("SELECT pg_relation_size('t')")));

  Process locker({.argv = {"psql", "-X", "-q", pg.Url(), "-c",
                           "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; "
                           "SELECT pg_sleep(6); COMMIT;"},
                  .env = {},
                  .unset_env = {},
                  .log_path = dir.path() / "locker.log",
                  .run_as_user = std::nullopt});
  // While the lock is held, samples succeed without measuring t, which keeps its last size...
  ASSERT_TRUE(WaitFor(
      [&] {
        const auto s = exporter.Scrape();
        return locker.Running() && FindValue(s, "iotistic_postgres_up") == 1.0 &&
               FindValue(s, "iotistic_postgres_tables_size_measured") == 0.0;
      },
      5s, 20ms))
      << exporter.process().Log();
  // ...and every scrape meanwhile is answered at once.
  int answered_while_locked = 0;
  for (int i = 0; i < 20 && locker.Running(); ++i) {
    const auto response = HttpGet(exporter.BaseUrl() + "/metrics", {}, 2s);
    ASSERT_EQ(response.status, 200) << response.error;
    const auto s = ParseMetricsText(response.body);
    EXPECT_EQ(FindValue(s, "iotistic_postgres_up"), 1.0);
    EXPECT_EQ(FindValue(s, "iotistic_postgres_table_size_bytes", t_table), size_before);
    if (locker.Running()) ++answered_while_locked;
  }
  EXPECT_GT(answered_while_locked, 5);
  ASSERT_TRUE(locker.Wait(30s).has_value());
  // Measured again once the lock is gone.
  EXPECT_TRUE(WaitFor(
      [&] { return FindValue(exporter.Scrape(), "iotistic_postgres_tables_size_measured") == 1.0; },
      20s));
  EXPECT_EQ(FindValue(exporter.Scrape(), "iotistic_exporter_sample_errors_total",
                      {{"collector", "postgres"}}),
            0);
}

// Prometheus itself scrapes the exporter and sees the same numbers.
TEST(PostgresPrometheusTest, PrometheusScrapesTheExporter) {
  PostgresServer pg;
  pg.Psql("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 42);");
  ExporterProcess exporter(
      BILLING_EXPORTER_PATH, {},
      {{"DATABASE_URL", pg.Url()}, {"SAMPLE_INTERVAL", "200ms"}, {"CUSTOMER_ID", "prom1"}});
  ASSERT_TRUE(exporter.WaitHealthy());
  PrometheusServer prometheus({"127.0.0.1:" + std::to_string(exporter.port())}, 1s);
  std::string answer;
  EXPECT_TRUE(WaitFor(
      [&] {
        answer = prometheus.Query(
            "iotistic_postgres_table_rows_inserted_total{customer_id=\"prom1\","
            "table=\"t\"}");
        return answer.find("\"42\"") != std::string::npos;
      },
      60s, 250ms))
      << answer;
  answer = prometheus.Query("up");
  EXPECT_NE(answer.find("\"1\""), std::string::npos) << answer;
}

}  // namespace
