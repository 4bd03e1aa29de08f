// Pure half of the PostgreSQL collector: what one catalog sample holds, and how
// it becomes metric families under the configured table selection and series
// cap. No I/O here.
#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace billing::exporter {

struct TableStats {
  std::string schema;
  std::string table;
  std::int64_t live_rows = 0;      // n_live_tup: PostgreSQL's running estimate
  std::int64_t rows_inserted = 0;  // n_tup_ins: cumulative since the statistics' reset
  std::int64_t table_bytes = 0;    // heap, free space map, visibility map
  std::int64_t index_bytes = 0;
  std::int64_t toast_bytes = 0;  // TOAST table and its index
  std::int64_t TotalBytes() const { return table_bytes + index_bytes + toast_bytes; }
};

struct CatalogSample {
  std::string database;
  std::int64_t database_size_bytes = 0;
  std::optional<double> stats_reset_unix_seconds;  // nullopt: statistics never reset
  double postmaster_start_unix_seconds = 0;
  std::vector<TableStats> tables;
};

struct TableSelection {
  std::vector<std::string> include_schemas;  // glob patterns; empty: all
  std::vector<std::string> exclude_schemas;
  std::vector<std::string> include_tables;  // glob patterns on "schema.table"; empty: all
  std::vector<std::string> exclude_tables;
  std::size_t max_table_series = 500;
};

/// Applies include/exclude patterns, then keeps the `max_table_series` largest
/// tables (by total bytes, ties by name) and folds the rest into one row
/// {schema="", table="other"} whose values are their sums. The result is
/// ordered by schema and table; the `other` row, if any, comes last.
std::vector<TableStats> SelectTables(std::vector<TableStats> tables,
                                     const TableSelection& selection);

/// True if `name` matches the include list (or it is empty) and no exclude
/// pattern.
bool Selected(const std::string& name, const std::vector<std::string>& include,
              const std::vector<std::string>& exclude);

/// The families of a successful catalog sample (iotistic_postgres_up 1
/// included).
std::vector<prometheus::MetricFamily> CatalogFamilies(const CatalogSample& sample,
                                                      const TableSelection& selection);

/// The families when the database could not be sampled: only
/// iotistic_postgres_up 0.
std::vector<prometheus::MetricFamily> DownFamilies();

struct ExactCount {
  std::string schema;
  std::string table;
  std::int64_t rows = 0;
};
std::vector<prometheus::MetricFamily> ExactCountFamilies(const std::vector<ExactCount>& counts);

}  // namespace billing::exporter
