#include "postgres_sample.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace billing::exporter
