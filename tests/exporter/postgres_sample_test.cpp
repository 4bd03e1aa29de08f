#include "postgres_sample.h"

#include <gtest/gtest.h>

#include <map>

#include "exposition.h"
#include "testbed.h"

namespace billing::exporter {
namespace {

using testbed::FindAll;
using testbed::FindValue;
using testbed::ParseMetricsText;

TableStats Table(std::string schema, std::string table, std::int64_t bytes,
                 std::int64_t inserted = 0) {
  TableStats t;
  t.schema = std::move(schema);
  t.table = std::move(table);
  t.table_bytes = bytes;
  t.index_bytes = bytes / 2;
  t.toast_bytes = bytes / 4;
  t.live_rows = bytes / 10;
  t.rows_inserted = inserted;
  return t;
}

TEST(SelectTablesTest, IncludeAndExcludePatterns) {
  std::vector<TableStats> tables = {Table("public", "readings", 10), Table("public", "tmp_x", 10),
                                    Table("audit", "events", 10), Table("tenant_a", "t", 10)};
  TableSelection selection;
  selection.include_schemas = {"public", "tenant_*"};
  selection.exclude_tables = {"public.tmp_*"};
  const auto kept = SelectTables(tables, selection);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].schema + "." + kept[0].table, "public.readings");
  EXPECT_EQ(kept[1].schema + "." + kept[1].table, "tenant_a.t");
}

TEST(SelectTablesTest, CapKeepsLargestAndOtherRowHoldsTheSums) {
  std::vector<TableStats> tables;
  std::int64_t total_bytes = 0, total_inserted = 0;
  for (int i = 0; i < 1000; ++i) {
    tables.push_back(Table("s", "t" + std::to_string(i), 1000 + i, i));
    total_bytes += tables.back().TotalBytes();
    total_inserted += i;
  }
  TableSelection selection;
  selection.max_table_series = 10;
  const auto kept = SelectTables(tables, selection);
  ASSERT_EQ(kept.size(), 11u);
  EXPECT_EQ(kept.back().schema, "");
  EXPECT_EQ(kept.back().table, "other");
  std::int64_t sum_bytes = 0, sum_inserted = 0;
  for (std::size_t i = 0; i + 1 < kept.size(); ++i) {
    EXPECT_GE(std::stoi(kept[i].table.substr(1)), 990) << kept[i].table;  // the 10 largest
  }
  for (const auto& t : kept) {
    sum_bytes += t.TotalBytes();
    sum_inserted += t.rows_inserted;
  }
  EXPECT_EQ(sum_bytes, total_bytes);
  EXPECT_EQ(sum_inserted, total_inserted);
}

TEST(SelectTablesTest, NoOtherRowAtOrBelowTheCap) {
  TableSelection selection;
  selection.max_table_series = 2;
  const auto kept = SelectTables({Table("a", "x", 1), Table("a", "y", 2)}, selection);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_NE(kept.back().table, "other");
}

TEST(CatalogFamiliesTest, AwkwardIdentifiersSurviveSerialisation) {
  const std::vector<std::string> names = {
      "MixedCase",   "with space",         "quo\"te",
      "back\\slash", "new\nline",          "dot.ted",
      "ünïcødé_表",  std::string(63, 'x'), "'; DROP TABLE x; --"};
  CatalogSample sample;
  sample.database = "db \"1\"";
  sample.database_size_bytes = 123456789;
  sample.stats_reset_unix_seconds = 1700000000.5;
  for (const auto& name : names) sample.tables.push_back(Table("Sch ema", name, 8192, 7));
  const auto text =
      SerializeText(CatalogFamilies(sample, TableSelection{}), {{"customer_id", "abc"}});
  const auto samples = ParseMetricsText(text);
  for (const auto& name : names) {
    EXPECT_EQ(FindValue(samples, "iotistic_postgres_table_rows_inserted_total",
                        {{"customer_id", "abc"}, {"schema", "Sch ema"}, {"table", name}}),
              7)
        << name;
  }
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_database_size_bytes", {{"database", "db \"1\""}}),
            123456789);
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_stats_reset_timestamp_seconds"), 1700000000.5);
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_tables"), static_cast<double>(names.size()));
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_up"), 1);
  EXPECT_EQ(FindAll(samples, "iotistic_postgres_table_size_bytes").size(), names.size() * 3);
}

TEST(CatalogFamiliesTest, TablesGaugeCountsSelectedTablesBeforeTheCap) {
  CatalogSample sample;
  for (int i = 0; i < 20; ++i)
    sample.tables.push_back(Table("s", "t" + std::to_string(i), i, 10 * i));
  sample.tables.push_back(Table("hidden", "h", 1, 1000));
  TableSelection selection;
  selection.exclude_schemas = {"hidden"};
  selection.max_table_series = 5;
  const auto samples = ParseMetricsText(SerializeText(CatalogFamilies(sample, selection), {}));
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_tables"), 20);
  // The database-level total is the sum before the cap, over the selected tables only.
  double inserted = 0;
  for (const auto& t : sample.tables)
    inserted += t.schema == "hidden" ? 0 : static_cast<double>(t.rows_inserted);
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_rows_inserted_total"), inserted);
  EXPECT_EQ(FindAll(samples, "iotistic_postgres_table_rows_estimated").size(), 6u);
}

TEST(CatalogFamiliesTest, DownFamiliesSayOnlyDown) {
  const auto samples = ParseMetricsText(SerializeText(DownFamilies(), {}));
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].name, "iotistic_postgres_up");
  EXPECT_EQ(samples[0].value, 0);
}

// ---- TableSizeCache: which tables a sample measures exactly
// --------------------------------------

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TableState State(std::uint32_t oid, std::uint64_t signature) {
  TableState t;
  t.oid = oid;
  t.schema = "s";
  t.table = "t" + std::to_string(oid);
  t.live_rows = oid;
  t.rows_inserted = 2 * oid;
  t.signature = signature;
  return t;
}

// What PostgreSQL would answer for the planned oids: sizes derived from oid and `version`.
SizeMeasurement Measure(const std::vector<std::uint32_t>& planned, std::int64_t version = 0) {
  SizeMeasurement m;
  for (auto oid : planned) {
    m.sizes.push_back(MeasuredSize{.oid = oid,
                                   .table_bytes = 8192 * (oid + version),
                                   .index_bytes = 16384 + version,
                                   .toast_bytes = version});
  }
  return m;
}

const TableStats* FindTable(const std::vector<TableStats>& tables, std::uint32_t oid) {
  for (const auto& t : tables)
    if (t.table == "t" + std::to_string(oid)) return &t;
  return nullptr;
}

TEST(TableSizeCacheTest, NewChangedUnchangedAndDroppedTables) {
  TableSizeCache cache(minutes(5), seconds(15));
  std::vector<TableState> tables = {State(30, 1), State(10, 1), State(20, 1)};
  auto now = milliseconds(1'000'000);

  // First sample: every table is new.
  auto planned = cache.Plan(tables, now);
  EXPECT_EQ(planned, (std::vector<std::uint32_t>{10, 20, 30}));
  std::size_t measured = 0;
  auto out = cache.Complete(tables, planned, Measure(planned), now, &measured);
  ASSERT_TRUE(out);
  EXPECT_EQ(measured, 3u);
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ(FindTable(*out, 20)->table_bytes, 8192 * 20);
  EXPECT_EQ(FindTable(*out, 20)->rows_inserted, 40);

  // Next sample: 20 changed, 40 is new, 30 dropped; 10 is unchanged and not due.
  now += seconds(15);
  tables = {State(10, 1), State(20, 2), State(40, 1)};
  planned = cache.Plan(tables, now);
  EXPECT_EQ(planned, (std::vector<std::uint32_t>{20, 40}));
  EXPECT_EQ(cache.size(), 2u);  // 30 left the cache
  out = cache.Complete(tables, planned, Measure(planned, 5), now, &measured);
  ASSERT_TRUE(out);
  EXPECT_EQ(measured, 2u);
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ(FindTable(*out, 10)->table_bytes, 8192 * 10);  // its last exact size
  EXPECT_EQ(FindTable(*out, 20)->table_bytes, 8192 * 25);  // measured again
  EXPECT_EQ(FindTable(*out, 20)->toast_bytes, 5);
  EXPECT_EQ(FindTable(*out, 40)->index_bytes, 16384 + 5);
  EXPECT_EQ(FindTable(*out, 30), nullptr);

  // Unchanged everything: nothing to measure (3 tables owe 3 * 15/300 of a refresh).
  now += seconds(15);
  planned = cache.Plan(tables, now);
  EXPECT_TRUE(planned.empty());
  out = cache.Complete(tables, planned, Measure(planned), now, &measured);
  ASSERT_TRUE(out);
  EXPECT_EQ(measured, 0u);
  EXPECT_EQ(out->size(), 3u);
}

// The database size: pg_database_size when measured, then moved by exactly the size changes of
// the relations the cache tracks, reported or not (a catalog, a sequence, an excluded table).
TEST(TableSizeCacheTest, DatabaseSizeFollowsEveryRelationBetweenMeasurements) {
  TableSizeCache cache(minutes(5), seconds(15));
  auto storage_only = [](std::uint32_t oid, std::uint64_t signature) {
    auto t = State(oid, signature);
    t.exported = false;
    t.schema.clear();
    t.table.clear();
    return t;
  };
  std::vector<TableState> tables = {State(10, 1), storage_only(20, 1)};
  auto now = milliseconds(0);
  EXPECT_FALSE(cache.DatabaseSize());
  EXPECT_TRUE(cache.DatabaseSizeOverdue(now));
  auto planned = cache.Plan(tables, now);
  auto out = cache.Complete(tables, planned, Measure(planned), now);
  ASSERT_TRUE(out);
  EXPECT_TRUE(cache.FullSampleCompleted());
  ASSERT_EQ(out->size(), 1u);  // the storage-only relation is not reported
  const std::int64_t relations = (8192 * 10 + 16384) + (8192 * 20 + 16384);
  EXPECT_EQ(cache.TotalBytes(), relations);
  cache.SetDatabaseSize(relations + 4096, now);  // the directory's other files: 4096 bytes
  EXPECT_EQ(cache.DatabaseSize(), relations + 4096);
  EXPECT_FALSE(cache.FullSampleDue(now + seconds(15)));
  EXPECT_FALSE(cache.DatabaseSizeOverdue(now + seconds(15)));

  // The storage-only relation grows (version 3: 3 pages more, 3 index bytes, 3 toast bytes) and a
  // new one appears; neither is reported, both count.
  now += seconds(15);
  tables = {State(10, 1), storage_only(20, 2), storage_only(30, 1)};
  planned = cache.Plan(tables, now);
  EXPECT_EQ(planned, (std::vector<std::uint32_t>{20, 30}));
  out = cache.Complete(tables, planned, Measure(planned, 3), now);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->size(), 1u);
  EXPECT_FALSE(cache.FullSampleCompleted());
  const std::int64_t grown = 8192 * 3 + 3 + 3;
  const std::int64_t added = 8192 * (30 + 3) + 16384 + 3 + 3;
  EXPECT_EQ(cache.DatabaseSize(), relations + 4096 + grown + added);

  // A dropped relation leaves the total.
  now += seconds(15);
  tables = {State(10, 1), storage_only(30, 1)};
  planned = cache.Plan(tables, now);
  EXPECT_TRUE(cache.Complete(tables, planned, Measure(planned, 3), now));
  EXPECT_EQ(cache.DatabaseSize(), 8192 * 10 + 16384 + 4096 + added);

  // The next full sample comes within size_max_age (by the next sample); pg_database_size is
  // overdue without one only after twice that.
  EXPECT_FALSE(cache.FullSampleDue(minutes(4) + seconds(44)));
  EXPECT_TRUE(cache.FullSampleDue(minutes(4) + seconds(46)));
  EXPECT_FALSE(cache.DatabaseSizeOverdue(minutes(10)));
  EXPECT_TRUE(cache.DatabaseSizeOverdue(minutes(10) + seconds(1)));
  cache.SetDatabaseSize(1'000'000, minutes(5));
  EXPECT_EQ(cache.DatabaseSize(), 1'000'000);
  // size_max_age 0: every sample is full.
  TableSizeCache every(milliseconds(0), seconds(15));
  EXPECT_TRUE(every.FullSampleDue(seconds(0)));
}

// A relation that only counts towards the database size (another session's temporary table, a
// sequence) and cannot be measured yet does not fail the sample: it joins the total once measured.
TEST(TableSizeCacheTest, AStorageOnlyRelationNeverMeasuredDoesNotFailTheSample) {
  TableSizeCache cache(minutes(5), seconds(15));
  auto temp = State(2, 1);
  temp.exported = false;
  const std::vector<TableState> tables = {State(1, 1), temp};
  const auto planned = cache.Plan(tables, seconds(0));
  auto locked = Measure({1});
  locked.locked = {2};
  const auto out = cache.Complete(tables, planned, locked, seconds(0));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->size(), 1u);
  EXPECT_FALSE(cache.FullSampleCompleted());
  EXPECT_EQ(cache.TotalBytes(), 8192 * 1 + 16384);
}

TEST(TableSizeCacheTest, TableDroppedBetweenTheQueriesLeavesTheSample) {
  TableSizeCache cache(minutes(5), seconds(15));
  const std::vector<TableState> tables = {State(1, 1), State(2, 1)};
  const auto planned = cache.Plan(tables, milliseconds(0));
  auto measurement = Measure({1});  // 2 is gone by the time its size is asked for
  std::size_t measured = 0;
  const auto out = cache.Complete(tables, planned, measurement, milliseconds(0), &measured);
  ASSERT_TRUE(out);
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ(out->front().table, "t1");
  EXPECT_EQ(measured, 1u);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TableSizeCacheTest, EveryTableIsMeasuredWithinMaxAge) {
  const auto interval = seconds(15);
  const auto max_age = minutes(5);
  TableSizeCache cache(max_age, interval);
  constexpr std::uint32_t kTables = 1000;
  std::vector<TableState> tables;
  for (std::uint32_t oid = 1; oid <= kTables; ++oid) tables.push_back(State(oid, 7));
  std::map<std::uint32_t, milliseconds> last;
  milliseconds now(123'456);
  int full_samples = 0;
  for (int sample = 0; sample < 200; ++sample, now += interval) {
    // One table is written every sample: measured every sample, the others only in full samples.
    tables[5].signature = static_cast<std::uint64_t>(sample);
    const bool full = cache.FullSampleDue(now);
    const auto planned = cache.Plan(tables, now);
    EXPECT_EQ(planned.size(), full ? kTables : 1u) << "sample " << sample;
    full_samples += full ? 1 : 0;
    ASSERT_TRUE(cache.Complete(tables, planned, Measure(planned), now));
    EXPECT_EQ(cache.FullSampleCompleted(), full);
    for (auto oid : planned) last[oid] = now;
    for (const auto& [oid, when] : last) {
      ASSERT_LE(now - when, max_age) << "table " << oid << " at sample " << sample;
    }
  }
  EXPECT_EQ(last.size(), kTables);
  EXPECT_EQ(full_samples, 10);  // 200 samples of 15 s, one in every 20
}

TEST(TableSizeCacheTest, FewTablesAreMeasuredOnlyWhenDue) {
  const auto interval = seconds(1);
  TableSizeCache cache(seconds(10), interval);
  const std::vector<TableState> tables = {State(1, 1)};
  milliseconds now(0);
  int measured_samples = 0;
  for (int sample = 0; sample < 40; ++sample, now += interval) {
    const auto planned = cache.Plan(tables, now);
    measured_samples += planned.empty() ? 0 : 1;
    ASSERT_TRUE(cache.Complete(tables, planned, Measure(planned), now));
  }
  // At 0 and then once per 10 s: about 4-5 of 40 samples, not every one.
  EXPECT_GE(measured_samples, 4);
  EXPECT_LE(measured_samples, 6);
}

TEST(TableSizeCacheTest, MaxAgeZeroMeasuresEveryTableEverySample) {
  TableSizeCache cache(milliseconds(0), seconds(15));
  const std::vector<TableState> tables = {State(1, 1), State(2, 1)};
  for (int sample = 0; sample < 3; ++sample) {
    const auto planned = cache.Plan(tables, seconds(15 * sample));
    EXPECT_EQ(planned.size(), 2u);
    ASSERT_TRUE(cache.Complete(tables, planned, Measure(planned), seconds(15 * sample)));
  }
}

TEST(TableSizeCacheTest, AfterAFailedMeasurementLastExactSizesAreKeptAndRetried) {
  TableSizeCache cache(minutes(5), seconds(15));
  std::vector<TableState> tables = {State(1, 1), State(2, 1)};
  auto planned = cache.Plan(tables, seconds(0));
  ASSERT_TRUE(cache.Complete(tables, planned, Measure(planned), seconds(0)));

  // 2 changed, but the size query fails (a lock taken after the check, a timeout).
  tables = {State(1, 1), State(2, 2)};
  planned = cache.Plan(tables, seconds(15));
  EXPECT_EQ(planned, (std::vector<std::uint32_t>{2}));
  std::size_t measured = 9;
  auto out =
      cache.Complete(tables, planned, SizeMeasurement{.ok = false, .sizes = {}, .locked = {}},
                     seconds(15), &measured);
  ASSERT_TRUE(out);  // the sample stays up...
  EXPECT_EQ(measured, 0u);
  EXPECT_EQ(FindTable(*out, 2)->table_bytes, 8192 * 2);  // ...with 2's last exact sizes

  // Locked: reported as such, kept, and still planned.
  planned = cache.Plan(tables, seconds(30));
  EXPECT_EQ(planned, (std::vector<std::uint32_t>{2}));
  out = cache.Complete(tables, planned, SizeMeasurement{.ok = true, .sizes = {}, .locked = {2}},
                       seconds(30), &measured);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->size(), 2u);
  EXPECT_EQ(measured, 0u);

  // The next sample that can measure it does.
  planned = cache.Plan(tables, seconds(45));
  EXPECT_EQ(planned, (std::vector<std::uint32_t>{2}));
  out = cache.Complete(tables, planned, Measure(planned, 3), seconds(45), &measured);
  ASSERT_TRUE(out);
  EXPECT_EQ(measured, 1u);
  EXPECT_EQ(FindTable(*out, 2)->table_bytes, 8192 * 5);
  EXPECT_TRUE(cache.Plan(tables, seconds(60)).empty());
}

TEST(TableSizeCacheTest, ATableNeverMeasuredFailsTheSampleWhenItCannotBeMeasured) {
  TableSizeCache cache(minutes(5), seconds(15));
  const std::vector<TableState> tables = {State(1, 1), State(2, 1)};
  const auto planned = cache.Plan(tables, seconds(0));
  EXPECT_FALSE(cache.Complete(tables, planned,
                              SizeMeasurement{.ok = false, .sizes = {}, .locked = {}}, seconds(0)));
  auto locked = Measure({1});
  locked.locked = {2};
  EXPECT_FALSE(cache.Complete(tables, planned, locked, seconds(0)));
  // Once both could be measured, the sample is whole; the full sample that did not complete is
  // tried again whole.
  const auto again = cache.Plan(tables, seconds(15));
  EXPECT_EQ(again, (std::vector<std::uint32_t>{1, 2}));
  EXPECT_TRUE(cache.Complete(tables, again, Measure(again), seconds(15)));
}

TEST(CatalogFamiliesTest, TablesSizeMeasuredIsExported) {
  CatalogSample sample;
  sample.tables_size_measured = 17;
  const auto samples =
      ParseMetricsText(SerializeText(CatalogFamilies(sample, TableSelection{}), {}));
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_tables_size_measured"), 17);
}

}  // namespace
}  // namespace billing::exporter
