// The provisioner's PostgreSQL schema, as numbered migrations applied in order (schema_migrations
// records which ones a database has). One runner for every table: usage_records, customers,
// deployments.
#pragma once

#include <optional>
#include <string>

namespace billing::provisioner {

/// Applies the migrations this version knows that the database lacks, in one transaction under
/// an advisory lock so that concurrent starts do not race; with `up_to`, only those up to that
/// version (a staged upgrade, and tests of a migration over older data). Throws on failure.
void ApplyMigrations(const std::string& database_url, std::optional<int> up_to = std::nullopt);

/// The number of the last migration this version knows.
int LatestMigrationVersion();

/// The transaction-level advisory lock under which usage ledger entries get their sequence
/// numbers (migration 9). Every transaction that writes usage records, finality or adjustments
/// takes it first, before any row lock, so that the triggers' own acquisition never waits while
/// holding rows another writer needs (no deadlock between the usage job and finalisation).
inline constexpr long kUsageLedgerLock = 7217004;
/// Taken by every append to audit_log, so that its ids are committed in order.
inline constexpr long kAuditLogLock = 7217012;

}  // namespace billing::provisioner
