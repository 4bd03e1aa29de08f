// The SQL of one catalog sample: shared by the collector and the benchmarks' psql floor, so the
// floor always measures exactly what the exporter sends. The collector prepares each statement
// once per connection, so a sample costs the database execution only, not planning.
//
// A sample is up to four statements in one read-only transaction:
//   1. kDatabaseStateQuery: the database's name and the times that mark a statistics reset;
//   2. kRelationStateQuery: every relation with storage (user tables, and for the database total
//      also catalogs, sequences, materialized views, excluded and temporary tables), with the
//      counters and a change signature, from the catalog and the statistics only: no size
//      function, no lock on any relation;
//   3. kRelationSizesQuery: the exact sizes of the relations the planner (postgres_sample.h,
//      TableSizeCache) chose, by oid: new and changed ones; on a full sample, all of them;
//   4. kDatabaseSizeQuery: pg_database_size, after each full sample (every relation measured,
//      at least every size_max_age); in between the database size moves by the exact size
//      changes of its relations (TableSizeCache::DatabaseSize).
#pragma once

namespace billing::exporter {

// Every relation of this database that has storage of its own besides indexes and TOAST (which
// count with their owner): tables, materialized views and sequences, in every schema; not the
// catalogs shared by all databases, which pg_database_size does not count. Column 12 says whether
// it is a user table the exporter reports (partitions included, partitioned parents excluded: they
// hold no rows of their own; schemas starting with pg_ are reserved for the system, so excluding
// them excludes nothing a user created); the others only count towards the database size. With
// each, what moves whenever its files can change size: rows written (n_tup_ins/upd/del count
// rolled-back writes too), VACUUM of it or of its TOAST table (truncation, FSM/VM), ANALYZE (a GIN
// pending-list cleanup), its file node (a rewrite, TRUNCATE, CLUSTER, VACUUM FULL, SET
// TABLESPACE: they give the TOAST table a new one too; pg_relation_filenode also sees the mapped
// catalogs') and the indexes of it and of its TOAST table (count and sum of file nodes:
// CREATE/DROP/REINDEX). Columns:
//   0 oid, 1 schema, 2 table, 3 n_live_tup, 4 n_tup_ins, 5 n_tup_upd, 6 n_tup_del,
//   7 vacuum + autovacuum count (table and TOAST), 8 analyze + autoanalyze count,
//   9 file node, 10 index count, 11 sum of index file nodes, 12 reported as a user table.
// The pg_stat_get_* calls are those pg_stat_user_tables is made of (the same values), without the
// view's aggregation over pg_index.
inline constexpr const char* kRelationStateQuery = R"sql(
SELECT c.oid::bigint, n.nspname, c.relname,
       pg_catalog.pg_stat_get_live_tuples(c.oid),
       pg_catalog.pg_stat_get_tuples_inserted(c.oid),
       pg_catalog.pg_stat_get_tuples_updated(c.oid),
       pg_catalog.pg_stat_get_tuples_deleted(c.oid),
       pg_catalog.pg_stat_get_vacuum_count(c.oid) + pg_catalog.pg_stat_get_autovacuum_count(c.oid)
         + pg_catalog.pg_stat_get_vacuum_count(c.reltoastrelid)
         + pg_catalog.pg_stat_get_autovacuum_count(c.reltoastrelid),
       pg_catalog.pg_stat_get_analyze_count(c.oid) + pg_catalog.pg_stat_get_autoanalyze_count(c.oid),
       COALESCE(pg_catalog.pg_relation_filenode(c.oid), 0)::bigint,
       COALESCE(x.n, 0)::bigint,
       COALESCE(x.filenodes, 0)::bigint,
       c.relkind = 'r' AND c.relpersistence <> 't'
         AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN (
  SELECT COALESCE(o.oid, i.indrelid) AS owner, count(*) AS n,
         sum(COALESCE(pg_catalog.pg_relation_filenode(i.indexrelid), 0)::bigint) AS filenodes
  FROM pg_catalog.pg_index i
  LEFT JOIN pg_catalog.pg_class o ON o.reltoastrelid = i.indrelid
  GROUP BY 1
) x ON x.owner = c.oid
WHERE c.relkind IN ('r', 'm', 'S') AND NOT c.relisshared
)sql";

// Exact sizes of the relations whose oids are in $1 (an oid[] parameter), split so that
// table + index + toast is exactly pg_total_relation_size. A table dropped since kTableStateQuery
// has no row (or NULL sizes if it went during this statement). A table that this statement would
// have to wait for (an ACCESS EXCLUSIVE lock granted or queued on it, its TOAST table or an index
// of either) is reported `locked` with NULL sizes instead of being waited for; a lock taken after
// the check still makes the statement wait up to lock_timeout and fail.
inline constexpr const char* kRelationSizesQuery = R"sql(
WITH locked AS MATERIALIZED (
  SELECT l.relation
  FROM pg_catalog.pg_locks l
  WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
    AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                      WHERE d.datname = pg_catalog.current_database())
), target AS MATERIALIZED (
  SELECT c.oid, c.reltoastrelid,
         EXISTS (SELECT 1 FROM locked k WHERE k.relation IN (c.oid, c.reltoastrelid))
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN locked k ON k.relation = i.indexrelid
                    WHERE i.indrelid IN (c.oid, c.reltoastrelid)) AS locked
  FROM pg_catalog.pg_class c
  WHERE c.oid = ANY ($1::oid[]) AND c.relkind IN ('r', 'm', 'S')
)
SELECT g.oid::bigint, g.locked, sz.total - sz.idx - sz.toast, sz.idx, sz.toast
FROM target g
LEFT JOIN LATERAL (
  SELECT pg_catalog.pg_total_relation_size(g.oid) AS total,
         pg_catalog.pg_indexes_size(g.oid) AS idx,
         CASE WHEN g.reltoastrelid = 0 THEN 0
              ELSE pg_catalog.pg_total_relation_size(g.reltoastrelid) END AS toast
  WHERE NOT g.locked
) sz ON true
)sql";

inline constexpr const char* kDatabaseStateQuery = R"sql(
SELECT d.datname,
       EXTRACT(EPOCH FROM pg_catalog.pg_stat_get_db_stat_reset_time(d.oid))::float8,
       EXTRACT(EPOCH FROM pg_catalog.pg_postmaster_start_time())::float8
FROM pg_catalog.pg_database d
WHERE d.datname = pg_catalog.current_database()
)sql";

inline constexpr const char* kDatabaseSizeQuery = R"sql(
SELECT pg_catalog.pg_database_size(pg_catalog.current_database())
)sql";

}  // namespace billing::exporter
