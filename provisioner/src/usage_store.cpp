#include "usage_store.h"

#include <pqxx/pqxx>

namespace billing::provisioner {
namespace {

// Append only: a released migration never changes; later ones build on it.
const std::vector<std::string> kMigrations = {
    R"sql(
CREATE TABLE usage_records (
  customer_id  text        NOT NULL,
  metric       text        NOT NULL CHECK (metric IN ('mqtt_messages', 'mqtt_bytes', 'rows_inserted',
                                                      'storage_byte_hours')),
  period_start timestamptz NOT NULL,
  period_end   timestamptz NOT NULL CHECK (period_end > period_start),
  quantity     numeric     NOT NULL CHECK (quantity >= 0),
  complete     boolean     NOT NULL,
  computed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, metric, period_start, period_end)
)
)sql",
};

}  // namespace

void ApplyMigrations(const std::string& database_url) {
  pqxx::connection connection(database_url);
  pqxx::work tx(connection);
  tx.exec("SELECT pg_advisory_xact_lock(7217001)");  // one migrator at a time
  tx.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
      "applied_at timestamptz NOT NULL DEFAULT now())");
  const auto applied =
      tx.exec("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0].as<int>();
  for (int version = applied + 1; version <= static_cast<int>(kMigrations.size()); ++version) {
    tx.exec(kMigrations[static_cast<std::size_t>(version - 1)]);
    tx.exec("INSERT INTO schema_migrations (version) VALUES (" + std::to_string(version) + ")");
  }
  tx.commit();
}

UsageStore::UsageStore(const std::string& database_url) {
  ApplyMigrations(database_url);
  connection_ = std::make_unique<pqxx::connection>(database_url);
  connection_->prepare("upsert_usage", R"sql(
INSERT INTO usage_records AS r (customer_id, metric, period_start, period_end, quantity, complete)
VALUES ($1, $2, to_timestamp($3), to_timestamp($4), $5::numeric, $6)
ON CONFLICT (customer_id, metric, period_start, period_end) DO UPDATE
  SET quantity = EXCLUDED.quantity, complete = EXCLUDED.complete, computed_at = now()
  WHERE (r.quantity, r.complete) IS DISTINCT FROM (EXCLUDED.quantity, EXCLUDED.complete)
    AND NOT (r.complete AND NOT EXCLUDED.complete)
)sql");
}

UsageStore::~UsageStore() = default;

std::size_t UsageStore::Upsert(const std::vector<UsageRecord>& records) {
  pqxx::work tx(*connection_);
  std::size_t changed = 0;
  for (const auto& r : records) {
    const auto result =
        tx.exec_prepared("upsert_usage", r.customer_id, r.metric, r.period.start, r.period.end,
                         FormatQuantity(r.metric, r.quantity), r.complete);
    changed += static_cast<std::size_t>(result.affected_rows());
  }
  tx.commit();
  return changed;
}

}  // namespace billing::provisioner
