// usage_records in the provisioner's PostgreSQL (libpqxx): migrations (migrations.h) applied on
// open, idempotent upserts keyed by (customer, metric, period).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "billing/provisioner/usage.h"
#include "pg_connection.h"

namespace pqxx {
class connection_base;
}

namespace billing::provisioner {

class UsageStore {
 public:
  explicit UsageStore(const std::string& database_url);  // connects and migrates; throws
  ~UsageStore();
  UsageStore(const UsageStore&) = delete;
  UsageStore& operator=(const UsageStore&) = delete;

  /// Inserts or updates each record in one transaction. A row changes only when its quantity or
  /// completeness differs (so re-running a period changes nothing), and a complete row is never
  /// replaced by an incomplete one (samples that have aged out of Prometheus are not "no usage").
  /// Returns how many rows were inserted or changed.
  std::size_t Upsert(const std::vector<UsageRecord>& records);

  /// Upsert, and in the same transaction moves the high-water mark of each of `customers` forward
  /// to `billed_until` (never back): what is marked billed is stored.
  std::size_t UpsertAndMark(const std::vector<UsageRecord>& records,
                            const std::vector<std::string>& customers, std::int64_t billed_until);

  /// Makes every record of a period ending at or before `period_end` final (invoiced): from then
  /// on Upsert never changes it, and a complete recomputation that differs from it is stored as
  /// an adjustment row (the delta, a reason, when). Returns how many records became final.
  std::size_t FinalizeBefore(std::int64_t period_end);

  /// Every customer of the store with where the usage job goes on from: its high-water mark, or
  /// nothing when the job never billed it (then from its creation).
  struct BillingMark {
    std::string customer_id;
    std::int64_t created_at = 0;
    std::optional<std::int64_t> billed_until;
  };
  std::vector<BillingMark> BillingMarks();

  /// For each of `customers`: the end of its last complete period, or its creation time when it
  /// has none (what an alert measures "no complete period for N hours" from).
  std::map<std::string, std::int64_t> LastCompletePeriods(
      const std::vector<std::string>& customers);

  /// Adjustment rows this object has written (for the adjustments counter).
  std::size_t adjustments_written() const { return adjustments_written_; }

  /// The ids of the customers in the same database (those `provisioner serve` created): only
  /// they are billed.
  std::set<std::string> CustomerIds();

 private:
  PgConnection connection_;
  std::size_t adjustments_written_ = 0;
};

}  // namespace billing::provisioner
