// Pure half of the PostgreSQL collector: what one catalog sample holds, how it
// becomes metric families under the configured table selection and series cap,
// and which tables' exact sizes a sample must measure (TableSizeCache). No I/O
// here.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
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
  std::size_t tables_size_measured = 0;  // tables whose sizes this sample measured exactly
};

/// One row of the cheap per-sample catalog query: a table's counters and the
/// signature of everything that moves when its files can change size.
struct TableState {
  std::uint32_t oid = 0;
  std::string schema;
  std::string table;
  std::int64_t live_rows = 0;
  std::int64_t rows_inserted = 0;
  std::uint64_t signature = 0;
  /// A user table the exporter reports; otherwise a relation that only counts towards the
  /// database size (a catalog, a sequence, a materialized view, an excluded or temporary table).
  bool exported = true;
};

/// Exact sizes of one table, as measured by the size query.
struct MeasuredSize {
  std::uint32_t oid = 0;
  std::int64_t table_bytes = 0;
  std::int64_t index_bytes = 0;
  std::int64_t toast_bytes = 0;
};

/// What the size query said about the tables a plan chose.
struct SizeMeasurement {
  bool ok = true;                     // false: the query failed; nothing was measured
  std::vector<MeasuredSize> sizes;    // any order
  std::vector<std::uint32_t> locked;  // not measured: it would have waited on a lock
};

/// Change-driven exact sizes. A relation's files change size only when its
/// signature moves (rows written, VACUUM/ANALYZE, a new file node, an index
/// added, dropped or rebuilt), so a sample measures exactly only relations
/// never measured and relations whose signature differs from the one their
/// sizes were measured under, and serves every other one's last exact sizes.
/// At least every `max_age` a full sample measures every relation (so no size
/// is older, and the database size is re-based on exact sizes; 0: every sample
/// is full). The cache holds 40 bytes per relation in a vector sorted by oid,
/// no names; dropped relations leave it on the next plan.
class TableSizeCache {
 public:
  TableSizeCache(std::chrono::milliseconds max_age, std::chrono::milliseconds interval);

  /// The oids (ascending) to measure exactly in this sample. `now` is any
  /// monotonic clock; `tables` are this sample's (selected) tables in any order.
  /// Forgets tables absent from `tables`.
  std::vector<std::uint32_t> Plan(const std::vector<TableState>& tables,
                                  std::chrono::milliseconds now);

  /// Records the measurement of Plan's oids (`planned`, from the same `tables`)
  /// and returns the sample's exported tables with their exact sizes. A planned table
  /// that the measurement did not return (dropped in between) leaves the
  /// sample and the cache. A table that was not measured (locked, or the query
  /// failed) keeps its last exact sizes and is planned again next sample; if it
  /// has none yet, there is no exact size to export and the result is nullopt
  /// (the sample fails). `measured_count` gets the number of exported tables measured.
  std::optional<std::vector<TableStats>> Complete(std::vector<TableState> tables,
                                                  const std::vector<std::uint32_t>& planned,
                                                  const SizeMeasurement& measurement,
                                                  std::chrono::milliseconds now,
                                                  std::size_t* measured_count = nullptr);

  std::size_t size() const { return entries_.size(); }

  /// The exact sizes of every relation in the cache, added up.
  std::int64_t TotalBytes() const;

  /// Whether the next Plan() measures every relation: none completed yet, `max_age` is 0, or the
  /// last complete one would be older than `max_age` by the next sample.
  bool FullSampleDue(std::chrono::milliseconds now) const;
  /// Whether the last Complete() measured every relation exactly (nothing locked, nothing failed):
  /// the moment to measure pg_database_size, whose remainder beyond the relations is then exact.
  bool FullSampleCompleted() const { return full_completed_; }
  /// Whether pg_database_size must be measured even without a complete full sample: never yet,
  /// or not for twice `max_age` (relations kept locked or failing).
  bool DatabaseSizeOverdue(std::chrono::milliseconds now) const;
  /// Records pg_database_size, measured in the same transaction after Complete(): what it counts
  /// beyond the relations (the database directory's other files) is kept as an offset.
  void SetDatabaseSize(std::int64_t bytes, std::chrono::milliseconds now);
  /// The database size: pg_database_size as last measured, moved since by every change of its
  /// relations' exact sizes (relations created, grown, shrunk or dropped). nullopt before the
  /// first measurement.
  std::optional<std::int64_t> DatabaseSize() const;

 private:
  struct Entry {
    std::uint32_t oid = 0;
    std::uint64_t signature = 0;  // the table's signature when its sizes were measured
    std::int64_t table_bytes = 0;
    std::int64_t index_bytes = 0;
    std::int64_t toast_bytes = 0;
  };
  const Entry* Find(std::uint32_t oid) const;

  std::chrono::milliseconds max_age_;
  std::chrono::milliseconds interval_;
  std::vector<Entry> entries_;   // sorted by oid
  bool full_planned_ = false;    // the last Plan() chose every relation
  bool full_completed_ = false;  // ... and the last Complete() measured them all
  std::optional<std::int64_t> full_measured_ms_;
  std::optional<std::int64_t> database_other_bytes_;  // pg_database_size - TotalBytes() then
  std::int64_t database_measured_ms_ = 0;
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
