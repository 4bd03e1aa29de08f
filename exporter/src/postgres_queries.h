// The SQL of one catalog sample: shared by the collector and the benchmarks' psql floor, so the
// floor always measures exactly what the exporter sends.
#pragma once

namespace billing::exporter {

// Every user table (partitions included, partitioned parents excluded: they
// hold no rows of their own), with sizes split so that table + index + toast is
// exactly pg_total_relation_size as evaluated in the same row. Schemas starting
// with pg_ are reserved for the system (catalog, toast, temp), so excluding
// them excludes nothing a user created.
inline constexpr const char* kTablesQuery = R"sql(
SELECT n.nspname, c.relname,
       COALESCE(s.n_live_tup, 0)::bigint,
       COALESCE(s.n_tup_ins, 0)::bigint,
       sz.total - sz.idx - sz.toast,
       sz.idx,
       sz.toast
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
CROSS JOIN LATERAL (
  SELECT COALESCE(pg_catalog.pg_total_relation_size(c.oid), 0) AS total,
         COALESCE(pg_catalog.pg_indexes_size(c.oid), 0) AS idx,
         CASE WHEN c.reltoastrelid = 0 THEN 0
              ELSE COALESCE(pg_catalog.pg_total_relation_size(c.reltoastrelid), 0) END AS toast
) sz
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
)sql";

inline constexpr const char* kDatabaseQuery = R"sql(
SELECT pg_catalog.current_database(),
       pg_catalog.pg_database_size(pg_catalog.current_database()),
       EXTRACT(EPOCH FROM d.stats_reset)::float8,
       EXTRACT(EPOCH FROM pg_catalog.pg_postmaster_start_time())::float8
FROM pg_catalog.pg_stat_database d
WHERE d.datname = pg_catalog.current_database()
)sql";

}  // namespace billing::exporter
