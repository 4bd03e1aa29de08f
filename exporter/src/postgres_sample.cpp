#include "postgres_sample.h"

#include <fnmatch.h>

#include <algorithm>
#include <tuple>
#include <utility>

#include "billing/common/metric_names.h"

namespace billing::exporter {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

bool MatchesAny(const std::string& name, const std::vector<std::string>& patterns) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& pattern) {
    return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
  });
}

ClientMetric Gauge(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  return metric;
}

ClientMetric Counter(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.counter.value = value;
  return metric;
}

MetricFamily UpFamily(bool up) {
  return MetricFamily{names::kPostgresUp,
                      "1 if the last sample of the customer's PostgreSQL succeeded, else 0.",
                      MetricType::Gauge,
                      {Gauge({}, up ? 1 : 0)}};
}

}  // namespace

bool Selected(const std::string& name, const std::vector<std::string>& include,
              const std::vector<std::string>& exclude) {
  return (include.empty() || MatchesAny(name, include)) && !MatchesAny(name, exclude);
}

std::vector<TableStats> SelectTables(std::vector<TableStats> tables,
                                     const TableSelection& selection) {
  std::erase_if(tables, [&](const TableStats& t) {
    return !Selected(t.schema, selection.include_schemas, selection.exclude_schemas) ||
           !Selected(t.schema + "." + t.table, selection.include_tables, selection.exclude_tables);
  });
  auto by_name = [](const TableStats& a, const TableStats& b) {
    return std::tie(a.schema, a.table) < std::tie(b.schema, b.table);
  };
  if (tables.size() <= selection.max_table_series) {
    std::sort(tables.begin(), tables.end(), by_name);
    return tables;
  }
  const auto keep = static_cast<std::ptrdiff_t>(selection.max_table_series);
  std::nth_element(tables.begin(), tables.begin() + keep, tables.end(),
                   [&](const TableStats& a, const TableStats& b) {
                     if (a.TotalBytes() != b.TotalBytes()) return a.TotalBytes() > b.TotalBytes();
                     return by_name(a, b);
                   });
  // The empty schema name cannot collide with a real table: PostgreSQL has no
  // empty identifiers.
  TableStats other;
  other.table = "other";
  for (auto it = tables.begin() + keep; it != tables.end(); ++it) {
    other.live_rows += it->live_rows;
    other.rows_inserted += it->rows_inserted;
    other.table_bytes += it->table_bytes;
    other.index_bytes += it->index_bytes;
    other.toast_bytes += it->toast_bytes;
  }
  tables.resize(selection.max_table_series);
  std::sort(tables.begin(), tables.end(), by_name);
  tables.push_back(std::move(other));
  return tables;
}

std::vector<MetricFamily> CatalogFamilies(const CatalogSample& sample,
                                          const TableSelection& selection) {
  std::size_t selected_count = 0;
  std::int64_t inserted_total = 0;
  for (const auto& t : sample.tables) {
    if (Selected(t.schema, selection.include_schemas, selection.exclude_schemas) &&
        Selected(t.schema + "." + t.table, selection.include_tables, selection.exclude_tables)) {
      ++selected_count;
      inserted_total += t.rows_inserted;
    }
  }
  const auto tables = SelectTables(sample.tables, selection);

  MetricFamily rows{names::kTableRowsEstimated,
                    "PostgreSQL's estimate of live rows in the table (n_live_tup).",
                    MetricType::Gauge,
                    {}};
  MetricFamily inserted{names::kTableRowsInserted,
                        "Rows inserted into the table since PostgreSQL's "
                        "statistics were last reset "
                        "(n_tup_ins), exactly as PostgreSQL reports it.",
                        MetricType::Counter,
                        {}};
  MetricFamily size{names::kTableSize,
                    "Bytes on disk of the table's heap (part=table), indexes "
                    "(part=index) and TOAST "
                    "(part=toast); their sum is pg_total_relation_size.",
                    MetricType::Gauge,
                    {}};
  rows.metric.reserve(tables.size());
  inserted.metric.reserve(tables.size());
  size.metric.reserve(tables.size() * 3);
  for (const auto& t : tables) {
    std::vector<ClientMetric::Label> labels = {{"schema", t.schema}, {"table", t.table}};
    rows.metric.push_back(Gauge(labels, static_cast<double>(t.live_rows)));
    inserted.metric.push_back(Counter(labels, static_cast<double>(t.rows_inserted)));
    auto part = [&](const char* name, std::int64_t bytes) {
      auto part_labels = labels;
      part_labels.push_back({"part", name});
      size.metric.push_back(Gauge(std::move(part_labels), static_cast<double>(bytes)));
    };
    part("table", t.table_bytes);
    part("index", t.index_bytes);
    part("toast", t.toast_bytes);
  }

  std::vector<MetricFamily> families;
  families.push_back(UpFamily(true));
  families.push_back(MetricFamily{
      names::kDatabaseSize,
      "Bytes on disk of the customer's database (pg_database_size).",
      MetricType::Gauge,
      {Gauge({{"database", sample.database}}, static_cast<double>(sample.database_size_bytes))}});
  families.push_back(MetricFamily{names::kTables,
                                  "User tables selected for export (before the series cap folds "
                                  "the smallest into the 'other' row).",
                                  MetricType::Gauge,
                                  {Gauge({}, static_cast<double>(selected_count))}});
  families.push_back(MetricFamily{
      names::kRowsInserted,
      "Rows inserted into all selected tables since the statistics' reset: the sum of the "
      "per-table "
      "counters before the series cap, so it does not move when tables change places in the cap. "
      "It goes down only when a table is dropped (its rows leave the sum).",
      MetricType::Counter,
      {Counter({}, static_cast<double>(inserted_total))}});
  families.push_back(MetricFamily{names::kStatsReset,
                                  "Unix time PostgreSQL's statistics counters (rows inserted) "
                                  "were last reset; 0 if never. "
                                  "A change marks a counter reset.",
                                  MetricType::Gauge,
                                  {Gauge({}, sample.stats_reset_unix_seconds.value_or(0))}});
  families.push_back(MetricFamily{names::kPostgresStartTime,
                                  "Unix time the PostgreSQL server started.",
                                  MetricType::Gauge,
                                  {Gauge({}, sample.postmaster_start_unix_seconds)}});
  families.push_back(MetricFamily{
      names::kTablesSizeMeasured,
      "Tables whose sizes the last sample measured exactly (new tables, tables written, vacuumed "
      "or altered since their last measurement; all of them in a full sample, at least every "
      "postgres.size_max_age); every other table's sizes are its last exact ones.",
      MetricType::Gauge,
      {Gauge({}, static_cast<double>(sample.tables_size_measured))}});
  families.push_back(std::move(rows));
  families.push_back(std::move(inserted));
  families.push_back(std::move(size));
  return families;
}

TableSizeCache::TableSizeCache(std::chrono::milliseconds max_age,
                               std::chrono::milliseconds interval)
    : max_age_(max_age), interval_(interval) {}

const TableSizeCache::Entry* TableSizeCache::Find(std::uint32_t oid) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), oid,
                             [](const Entry& e, std::uint32_t o) { return e.oid < o; });
  return it != entries_.end() && it->oid == oid ? &*it : nullptr;
}

std::vector<std::uint32_t> TableSizeCache::Plan(const std::vector<TableState>& tables,
                                                std::chrono::milliseconds now) {
  std::vector<std::uint32_t> present;
  present.reserve(tables.size());
  for (const auto& t : tables) present.push_back(t.oid);
  std::sort(present.begin(), present.end());
  // Dropped (or deselected) tables leave the cache.
  std::erase_if(entries_, [&](const Entry& e) {
    return !std::binary_search(present.begin(), present.end(), e.oid);
  });

  // A full sample measures every relation: at least every max_age, so that no size is older, and so
  // that the database size is re-based on exact sizes of everything (see DatabaseSize).
  full_planned_ = FullSampleDue(now);
  if (full_planned_) return present;
  std::vector<std::uint32_t> measure;
  for (const auto& t : tables) {
    const Entry* e = Find(t.oid);
    if (e == nullptr || e->signature != t.signature) measure.push_back(t.oid);
  }
  std::sort(measure.begin(), measure.end());
  return measure;
}

std::optional<std::vector<TableStats>> TableSizeCache::Complete(
    std::vector<TableState> tables, const std::vector<std::uint32_t>& planned,
    const SizeMeasurement& measurement, std::chrono::milliseconds now,
    std::size_t* measured_count) {
  std::size_t measured = 0;
  std::vector<std::uint32_t> dropped;
  if (measurement.ok && !planned.empty()) {
    auto by_oid = [](const auto& a, const auto& b) { return a.oid < b.oid; };
    std::vector<MeasuredSize> sizes = measurement.sizes;
    std::sort(sizes.begin(), sizes.end(), by_oid);
    std::vector<std::uint32_t> locked = measurement.locked;
    std::sort(locked.begin(), locked.end());
    std::vector<std::tuple<std::uint32_t, std::uint64_t, bool>> signatures;
    signatures.reserve(tables.size());
    for (const auto& t : tables) signatures.emplace_back(t.oid, t.signature, t.exported);
    std::sort(signatures.begin(), signatures.end());

    const std::size_t old_count = entries_.size();
    for (const std::uint32_t oid : planned) {
      if (std::binary_search(locked.begin(), locked.end(), oid)) continue;  // retried next sample
      const auto size =
          std::lower_bound(sizes.begin(), sizes.end(), MeasuredSize{.oid = oid}, by_oid);
      if (size == sizes.end() || size->oid != oid) {
        dropped.push_back(oid);
        continue;
      }
      const auto sig = std::lower_bound(signatures.begin(), signatures.end(),
                                        std::make_tuple(oid, std::uint64_t{0}, false));
      if (sig == signatures.end() || std::get<0>(*sig) != oid) continue;  // not of this sample
      if (std::get<2>(*sig)) ++measured;
      const Entry fresh{.oid = oid,
                        .signature = std::get<1>(*sig),
                        .table_bytes = size->table_bytes,
                        .index_bytes = size->index_bytes,
                        .toast_bytes = size->toast_bytes};
      auto it = std::lower_bound(entries_.begin(),
                                 entries_.begin() + static_cast<std::ptrdiff_t>(old_count), oid,
                                 [](const Entry& e, std::uint32_t o) { return e.oid < o; });
      if (it != entries_.begin() + static_cast<std::ptrdiff_t>(old_count) && it->oid == oid) {
        *it = fresh;
      } else {
        entries_.push_back(fresh);  // sorted in below, once
      }
    }
    std::inplace_merge(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(old_count),
                       entries_.end(), by_oid);
    std::sort(dropped.begin(), dropped.end());
    std::erase_if(entries_, [&](const Entry& e) {
      return std::binary_search(dropped.begin(), dropped.end(), e.oid);
    });
  }
  if (measured_count != nullptr) *measured_count = measured;
  full_completed_ = full_planned_ && measurement.ok && measurement.locked.empty();
  if (full_completed_) full_measured_ms_ = now.count();

  std::vector<TableStats> out;
  out.reserve(tables.size());
  for (auto& t : tables) {
    if (std::binary_search(dropped.begin(), dropped.end(), t.oid)) continue;
    if (!t.exported) continue;  // counts towards the database size only, once measured
    const Entry* e = Find(t.oid);
    if (e == nullptr) return std::nullopt;  // never measured: no exact size to export
    out.push_back(TableStats{.schema = std::move(t.schema),
                             .table = std::move(t.table),
                             .live_rows = t.live_rows,
                             .rows_inserted = t.rows_inserted,
                             .table_bytes = e->table_bytes,
                             .index_bytes = e->index_bytes,
                             .toast_bytes = e->toast_bytes});
  }
  return out;
}

std::int64_t TableSizeCache::TotalBytes() const {
  std::int64_t total = 0;
  for (const auto& e : entries_) total += e.table_bytes + e.index_bytes + e.toast_bytes;
  return total;
}

bool TableSizeCache::FullSampleDue(std::chrono::milliseconds now) const {
  return !full_measured_ms_ || max_age_.count() <= 0 ||
         now.count() - *full_measured_ms_ + interval_.count() > max_age_.count();
}

bool TableSizeCache::DatabaseSizeOverdue(std::chrono::milliseconds now) const {
  return !database_other_bytes_ || now.count() - database_measured_ms_ > 2 * max_age_.count();
}

void TableSizeCache::SetDatabaseSize(std::int64_t bytes, std::chrono::milliseconds now) {
  database_other_bytes_ = bytes - TotalBytes();
  database_measured_ms_ = now.count();
}

std::optional<std::int64_t> TableSizeCache::DatabaseSize() const {
  if (!database_other_bytes_) return std::nullopt;
  return std::max<std::int64_t>(0, TotalBytes() + *database_other_bytes_);
}

std::vector<MetricFamily> DownFamilies() {
  std::vector<MetricFamily> families;
  families.push_back(UpFamily(false));
  return families;
}

std::vector<MetricFamily> ExactCountFamilies(const std::vector<ExactCount>& counts) {
  MetricFamily rows{names::kTableRows,
                    "Exact row count (count(*)) of the tables the "
                    "configuration lists, taken on "
                    "their own slower cadence.",
                    MetricType::Gauge,
                    {}};
  for (const auto& c : counts) {
    rows.metric.push_back(
        Gauge({{"schema", c.schema}, {"table", c.table}}, static_cast<double>(c.rows)));
  }
  std::vector<MetricFamily> families;
  if (!rows.metric.empty()) families.push_back(std::move(rows));
  return families;
}

}  // namespace billing::exporter
