// The metric contract (DESIGN.md, "Metric contract"): names shared with the
// provisioner's usage job, the recording rules and the dashboards. Change them
// only together with docs/DESIGN.md.
#pragma once

namespace billing::exporter::names {

inline constexpr const char* kPostgresUp = "iotistic_postgres_up";
inline constexpr const char* kDatabaseSize = "iotistic_postgres_database_size_bytes";
inline constexpr const char* kTableRowsEstimated = "iotistic_postgres_table_rows_estimated";
inline constexpr const char* kTableRows = "iotistic_postgres_table_rows";
inline constexpr const char* kTableRowsInserted = "iotistic_postgres_table_rows_inserted_total";
inline constexpr const char* kTableSize = "iotistic_postgres_table_size_bytes";
inline constexpr const char* kTables = "iotistic_postgres_tables";
inline constexpr const char* kStatsReset = "iotistic_postgres_stats_reset_timestamp_seconds";
inline constexpr const char* kPostgresStartTime = "iotistic_postgres_start_time_seconds";

inline constexpr const char* kSampleDuration = "iotistic_exporter_sample_duration_seconds";
inline constexpr const char* kLastSampleTimestamp =
    "iotistic_exporter_last_sample_timestamp_seconds";
inline constexpr const char* kSampleErrors = "iotistic_exporter_sample_errors_total";
inline constexpr const char* kBuildInfo = "iotistic_exporter_build_info";

}  // namespace billing::exporter::names
