#include "usage_store.h"

#include <pqxx/pqxx>
#include <stdexcept>

#include "migrations.h"

namespace billing::provisioner {
UsageStore::UsageStore(const std::string& database_url) {
  ApplyMigrations(database_url);
  connection_ = Connect(database_url);
  connection_->prepare("overlapping_usage", R"sql(
SELECT to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       to_char(period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
FROM usage_records
WHERE customer_id = $1 AND metric = $2
  AND tstzrange(period_start, period_end, '[)') && tstzrange(to_timestamp($3), to_timestamp($4), '[)')
  AND NOT (period_start = to_timestamp($3) AND period_end = to_timestamp($4))
LIMIT 1
)sql");
  connection_->prepare("upsert_usage", R"sql(
INSERT INTO usage_records AS r (customer_id, metric, period_start, period_end, quantity, complete)
VALUES ($1, $2, to_timestamp($3), to_timestamp($4), $5::numeric, $6)
ON CONFLICT (customer_id, metric, period_start, period_end) DO UPDATE
  SET quantity = EXCLUDED.quantity, complete = EXCLUDED.complete, computed_at = now()
  WHERE (r.quantity, r.complete) IS DISTINCT FROM (EXCLUDED.quantity, EXCLUDED.complete)
    AND NOT (r.complete AND NOT EXCLUDED.complete)
    AND NOT r.final
)sql");
  // A complete recomputation of a final figure that differs from it (with its adjustments so far)
  // adds the difference as an adjustment; an equal one, or an incomplete one, adds nothing.
  connection_->prepare("adjust_final_usage", R"sql(
WITH current AS (
  SELECT r.quantity + coalesce((SELECT sum(a.delta) FROM usage_adjustments a
                                WHERE a.customer_id = r.customer_id AND a.metric = r.metric
                                  AND a.period_start = r.period_start
                                  AND a.period_end = r.period_end), 0) AS billed
  FROM usage_records r
  WHERE r.customer_id = $1 AND r.metric = $2 AND r.period_start = to_timestamp($3)
    AND r.period_end = to_timestamp($4) AND r.final
)
INSERT INTO usage_adjustments (customer_id, metric, period_start, period_end, delta, reason)
SELECT $1, $2, to_timestamp($3), to_timestamp($4), $5::numeric - billed, $7
FROM current WHERE $6 AND $5::numeric <> billed
)sql");
}

UsageStore::~UsageStore() = default;

std::set<std::string> UsageStore::CustomerIds() {
  pqxx::nontransaction tx(*connection_);
  std::set<std::string> ids;
  for (const auto& row : tx.exec("SELECT id FROM customers")) ids.insert(row[0].as<std::string>());
  return ids;
}

namespace {

// Periods of different lengths over the same time would both be billed: refuse them.
void RefuseOverlaps(pqxx::work& tx, const std::vector<UsageRecord>& records) {
  for (const auto& r : records) {
    const auto overlapping = tx.exec_prepared("overlapping_usage", r.customer_id, r.metric,
                                              r.period.start, r.period.end);
    if (!overlapping.empty()) {
      throw std::runtime_error("usage_records already holds " + r.customer_id + " " + r.metric +
                               " for " + overlapping[0][0].as<std::string>() + " .. " +
                               overlapping[0][1].as<std::string>() + ", which overlaps " +
                               FormatTime(r.period.start) + " .. " + FormatTime(r.period.end) +
                               " with other bounds; use the store's period length");
    }
  }
}

}  // namespace

std::size_t UsageStore::Upsert(const std::vector<UsageRecord>& records) {
  return UpsertAndMark(records, {}, 0);
}

std::map<std::string, std::int64_t> UsageStore::LastCompletePeriods(
    const std::vector<std::string>& customers) {
  pqxx::nontransaction tx(*connection_);
  std::map<std::string, std::int64_t> last;
  for (const auto& customer : customers) {
    const auto row = tx.exec_params1(
        "SELECT extract(epoch FROM coalesce((SELECT max(period_end) FROM usage_records "
        "WHERE customer_id = $1 AND complete), (SELECT created_at FROM customers WHERE id = $1), "
        "now()))::bigint",
        customer);
    last[customer] = row[0].as<std::int64_t>();
  }
  return last;
}

std::size_t UsageStore::FinalizeBefore(std::int64_t period_end) {
  pqxx::work tx(*connection_);
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", kUsageLedgerLock);  // before any row lock
  const auto result = tx.exec_params(
      "UPDATE usage_records SET final = true, finalized_at = now() "
      "WHERE NOT final AND period_end <= to_timestamp($1)",
      period_end);
  tx.commit();
  return static_cast<std::size_t>(result.affected_rows());
}

std::vector<UsageStore::BillingMark> UsageStore::BillingMarks() {
  pqxx::nontransaction tx(*connection_);
  std::vector<BillingMark> marks;
  for (const auto& row :
       tx.exec("SELECT c.id, extract(epoch FROM c.created_at)::bigint, "
               "extract(epoch FROM w.billed_until)::bigint FROM customers c "
               "LEFT JOIN usage_watermarks w ON w.customer_id = c.id ORDER BY 1")) {
    BillingMark mark{row[0].as<std::string>(), row[1].as<std::int64_t>(), std::nullopt};
    if (!row[2].is_null()) mark.billed_until = row[2].as<std::int64_t>();
    marks.push_back(std::move(mark));
  }
  return marks;
}

std::size_t UsageStore::UpsertAndMark(const std::vector<UsageRecord>& records,
                                      const std::vector<std::string>& customers,
                                      std::int64_t billed_until) {
  pqxx::work tx(*connection_);
  tx.exec("SELECT pg_advisory_xact_lock(7217002)");  // one writer at a time: overlaps stay checked
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", kUsageLedgerLock);  // before any row lock
  for (const auto& customer : customers) {
    tx.exec_params(
        "INSERT INTO usage_watermarks AS w (customer_id, billed_until) "
        "VALUES ($1, to_timestamp($2)) ON CONFLICT (customer_id) DO UPDATE "
        "SET billed_until = EXCLUDED.billed_until, updated_at = now() "
        "WHERE w.billed_until < EXCLUDED.billed_until",
        customer, billed_until);
  }
  RefuseOverlaps(tx, records);
  std::size_t changed = 0;
  std::size_t adjustments = 0;
  for (const auto& r : records) {
    const auto result =
        tx.exec_prepared("upsert_usage", r.customer_id, r.metric, r.period.start, r.period.end,
                         FormatQuantity(r.metric, r.quantity), r.complete);
    changed += static_cast<std::size_t>(result.affected_rows());
    const auto adjusted =
        tx.exec_prepared("adjust_final_usage", r.customer_id, r.metric, r.period.start,
                         r.period.end, FormatQuantity(r.metric, r.quantity), r.complete,
                         std::string("recomputed after the period was final"));
    changed += static_cast<std::size_t>(adjusted.affected_rows());
    adjustments += static_cast<std::size_t>(adjusted.affected_rows());
  }
  tx.commit();
  adjustments_written_ += adjustments;
  return changed;
}

}  // namespace billing::provisioner
