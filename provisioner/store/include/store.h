// store: the provisioner's PostgreSQL (libpqxx): customers, deployments, usage records.
// May not depend on: libcurl, CivetWeb, kube, api, service (pure components and common only).
//
// Customers and their deployments behind a small connection pool so HTTP handlers and workers do
// not share a connection. The desired state (present/absent, generation, chart values) is written
// by the API; the observed state (phase, message, components) by the reconciler, which holds a
// per-customer session advisory lock while it works: a crashed provisioner's locks go with its
// connections.
//
// Secrets at rest: the chart values named in secret_values.h (kSecretChartValuePaths) are sealed
// with the SecretBox where chart values are written (CreateCustomer, RequestUpgrade,
// ResealSecrets) and opened where they are read (Deployment, ReconcileSession::Load), so callers
// only ever see clear values and the database only sealed ones. Without a SecretBox (an explicit
// opt-out of `provisioner serve`) values are written in clear. Values found in clear are still
// read, counted (clear_secret_reads) and logged once per process.
//
// Thread-safety: Store is safe to share; a ReconcileSession belongs to one worker thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "billing/provisioner/ledger.h"
#include "billing/provisioner/usage.h"
#include "deployment_state.h"
#include "pg_connection.h"
#include "secret_box.h"
#include "secret_values.h"

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace billing::provisioner {

struct NewCustomer {
  std::string id;
  std::string email;
  std::string company_name;
  std::string password_hash;  // Argon2id PHC string, never the password
  std::string plan;
  nlohmann::ordered_json chart_values;
};

/// A public signup awaiting the verification of its e-mail address (no customer exists yet).
struct PendingSignup {
  std::string email;
  std::string company_name;
  std::string password_hash;  // Argon2id PHC string
  std::string plan;
};

/// Connections to one database, created on demand up to `size`, each used by one thread at a
/// time. A connection that broke is dropped instead of returned.
///
/// With an `operation_timeout`, every lease has a deadline: a database that stops answering
/// without closing its connections (frozen, or its host gone without a reset) would otherwise
/// hold the caller's thread for as long as TCP allows, and PostgreSQL's own statement_timeout
/// cannot help when the server is the part that hangs. A watchdog thread shuts down the socket
/// of a lease past its deadline, so the blocked call fails with pqxx::broken_connection (the
/// API answers 503) and the connection is replaced. Leases are short here (one store call).
class ConnectionPool {
 public:
  /// `operation_timeout` zero: no deadline (one-shot commands).
  ConnectionPool(std::string database_url, std::size_t size,
                 std::chrono::milliseconds operation_timeout = {});
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  class Lease {
   public:
    Lease(ConnectionPool& pool, PgConnection connection);
    ~Lease();
    Lease(Lease&&) = delete;
    pqxx::connection_base& operator*() const { return *connection_; }

   private:
    ConnectionPool& pool_;
    PgConnection connection_;
    std::uint64_t id_;  // its entry among the watched leases
  };
  /// Waits up to the operation timeout (30 s without one) for a free connection
  /// (std::runtime_error after that); throws pqxx::broken_connection if one cannot be opened.
  Lease Acquire();

 private:
  struct Watched {
    int socket;
    std::chrono::steady_clock::time_point deadline;
    bool cut;
  };
  PgConnection Checkout();
  std::uint64_t StartWatching(int socket);
  void Release(std::uint64_t id, PgConnection connection);
  void CutOverdueLeases(const std::stop_token& stop);

  const std::string database_url_;
  const std::size_t size_;
  const std::chrono::milliseconds operation_timeout_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<PgConnection> idle_;
  std::size_t open_ = 0;
  std::map<std::uint64_t, Watched> leased_;  // with a deadline only
  std::uint64_t next_lease_id_ = 0;
  std::condition_variable_any watchdog_wake_;
  std::jthread watchdog_;  // last: started after, and joined before, what it uses
};

/// The SecretBox of a store (null: no key configured) and what reading found in clear, shared by
/// the Store and its ReconcileSessions.
struct StoreSecrets {
  explicit StoreSecrets(std::shared_ptr<const SecretBox> secret_box) : box(std::move(secret_box)) {}
  const std::shared_ptr<const SecretBox> box;
  std::atomic<std::uint64_t> clear_reads{0};  // secret values read in clear
  std::atomic<bool> clear_logged{false};
};

class Store {
 public:
  /// Applies migrations and prepares the pool; throws if the database cannot be reached.
  /// `secret_box` seals the secret chart values; null stores them in clear.
  /// `operation_timeout`: the deadline of each call's database work (ConnectionPool).
  Store(const std::string& database_url, std::size_t pool_size,
        std::shared_ptr<const SecretBox> secret_box,
        std::chrono::milliseconds operation_timeout = {});

  enum class CreateOutcome { kCreated, kEmailTaken, kIdTaken, kTokenUnknown };
  /// The customer and its deployment (desired present, generation 1, phase Pending) together.
  CreateOutcome CreateCustomer(const NewCustomer& customer);

  /// Public signups awaiting verification whose link has not expired.
  std::int64_t CountPendingSignups();
  /// Stores a signup awaiting verification under its link token's SHA-256 hex, live until
  /// `expires_at` (Unix seconds); expired ones are deleted on the way.
  void AddPendingSignup(const std::string& token_hash, const PendingSignup& signup,
                        std::int64_t expires_at);
  /// The live (unexpired, not yet verified) pending signup of a link token.
  std::optional<PendingSignup> PendingSignupByToken(const std::string& token_hash);
  /// The verification: takes the live pending signup of the token (for the same address as
  /// `customer`) and creates the customer as CreateCustomer does, in one transaction, voiding
  /// every other pending signup of the address. kTokenUnknown when the token is not live any
  /// more (expired, or used by a concurrent request); any outcome but kCreated changes nothing.
  CreateOutcome CompleteSignup(const std::string& token_hash, const NewCustomer& customer);

  std::optional<DeploymentRow> Deployment(const std::string& customer_id);
  bool CustomerExists(const std::string& customer_id);

  enum class ChangeOutcome { kAccepted, kUnknownCustomer, kDeleted, kNotSuspended };
  struct UpgradeOutcome {
    ChangeOutcome outcome = ChangeOutcome::kUnknownCustomer;
    std::int64_t generation = 0;  // the new desired generation, when kAccepted
  };
  /// New chart values (already merged and validated by the caller): desired generation + 1.
  /// `expected_generation` guards against a concurrent upgrade (kDeleted is also returned when
  /// the deployment is being deleted).
  /// `plan`, when set, becomes the customer's plan (a new license key was issued or given).
  UpgradeOutcome RequestUpgrade(const std::string& customer_id,
                                const nlohmann::ordered_json& chart_values,
                                std::int64_t expected_generation,
                                const std::optional<std::string>& plan = std::nullopt);
  /// The customer's plan (that of its current license key); nullopt for an unknown customer.
  std::optional<std::string> CustomerPlan(const std::string& customer_id);
  /// The first phase of a delete: desired suspended (the workloads scaled to zero, the data
  /// kept) until now + `retention_seconds`, desired generation + 1. Idempotent: a suspended
  /// deployment keeps its purge time. kDeleted when it is already being deleted.
  struct SuspendOutcome {
    ChangeOutcome outcome = ChangeOutcome::kUnknownCustomer;
    std::string purge_after;  // RFC 3339 UTC, when kAccepted
  };
  SuspendOutcome RequestSuspend(const std::string& customer_id, std::int64_t retention_seconds);
  /// A suspended deployment desired present again (generation + 1); idempotent for a present
  /// one; kDeleted once its purge was requested.
  ChangeOutcome RequestRestore(const std::string& customer_id);
  /// The second, deliberate phase: desired absent (the namespace and its data deleted).
  /// kNotSuspended for a present deployment: a purge needs a suspension first. Idempotent.
  ChangeOutcome RequestPurge(const std::string& customer_id);
  /// Suspensions past their purge time become deletions, due at once; their customer ids.
  std::vector<std::string> PurgeExpiredSuspensions();

  struct Credentials {
    std::string customer_id;
    std::string password_hash;
    std::string email;
  };
  /// The customer with this e-mail address (case-insensitive), for a login.
  std::optional<Credentials> CustomerCredentials(const std::string& email);
  std::optional<Credentials> CustomerCredentialsById(const std::string& customer_id);
  /// Stores `new_hash` if the stored hash is still `old_hash` (a re-hash at login must not undo
  /// a concurrent password change); whether it did.
  bool ReplacePasswordHash(const std::string& customer_id, const std::string& old_hash,
                           const std::string& new_hash);
  /// A password change: ReplacePasswordHash, and in the same transaction every refresh token and
  /// every pending password reset of the customer revoked. False (nothing changed) if the
  /// stored hash is no longer `old_hash`.
  bool ChangePassword(const std::string& customer_id, const std::string& old_hash,
                      const std::string& new_hash);
  /// Stores a password reset token by its SHA-256 hex, valid until `expires_at`; false (nothing
  /// stored) when the customer already has `max_per_hour` resets created in the last hour.
  bool AddPasswordReset(const std::string& token_hash, const std::string& customer_id,
                        std::int64_t expires_at, int max_per_hour);
  /// The customer of a live (unused, unexpired) reset token.
  std::optional<Credentials> PasswordResetCustomer(const std::string& token_hash);
  /// Uses the reset token once: if it is still live, stores `new_hash` and revokes every refresh
  /// token and every other pending reset of its customer, in one transaction; the customer id,
  /// or nullopt (unknown, expired or already used).
  std::optional<std::string> CompletePasswordReset(const std::string& token_hash,
                                                   const std::string& new_hash);
  /// Stores a refresh token by its SHA-256 hex, valid until `expires_at` (Unix seconds).
  void AddRefreshToken(const std::string& token_hash, const std::string& customer_id,
                       std::int64_t expires_at);
  /// Revokes the token if it is live (not revoked, not expired) and stores `new_hash` for the
  /// same customer in the same transaction; the customer id, or nullopt. A token that was
  /// already revoked (a replay) revokes every live token of its customer.
  std::optional<std::string> RotateRefreshToken(const std::string& token_hash,
                                                const std::string& new_hash,
                                                std::int64_t new_expires_at);
  /// Revokes the token; false if there was no live token with this hash.
  bool RevokeRefreshToken(const std::string& token_hash);

  /// Customers whose deployment is due for a reconciliation step, soonest first.
  std::vector<std::string> DueDeployments(std::size_t limit);
  std::map<std::string, std::int64_t> CountByPhase();
  /// Customers with a deployment that is not Deleted (the usage job bills them even without data).
  std::vector<std::string> BillableCustomers();
  /// Every customer ever created (deleted ones too: their last periods are still billed).
  std::set<std::string> CustomerIds();
  /// usage_records of one customer with periods inside [from, to), oldest first.
  /// Makes the customer's usage records of periods ending at or before `until` final (the
  /// billing side invoiced them): from then on a differing recomputation is an adjustment. Returns
  /// how many records became final.
  std::size_t FinalizeUsage(const std::string& customer_id, std::int64_t until);
  std::vector<UsageRecord> Usage(const std::string& customer_id, std::int64_t from,
                                 std::int64_t to);
  /// At most `limit` usage ledger entries after the cursor `since` (of one customer, or of all),
  /// in sequence order, which is commit order: reading on from the last one returned sees every
  /// entry exactly once, also those of transactions that were still open.
  std::vector<LedgerEntry> LedgerAfter(std::int64_t since, std::size_t limit,
                                       const std::optional<std::string>& customer_id);

  /// Key ids and clear values of every deployment's secret chart values (start-up check).
  SecretInventory Secrets();

  struct ResealReport {
    std::size_t customers = 0;  // deployments whose chart_values were rewritten
    ResealedSecrets values;
  };
  /// Puts every secret chart value of every deployment under the current key, in one
  /// transaction (rows locked; nothing is written if one value cannot be opened). Idempotent:
  /// values already under the current key are left as they are. Needs a SecretBox.
  Result<ResealReport> ResealSecrets();

  const std::shared_ptr<StoreSecrets>& secrets() const { return secrets_; }
  /// Secret values read in clear since the start (rows from before a key was configured).
  std::uint64_t clear_secret_reads() const { return secrets_->clear_reads.load(); }
  ConnectionPool& pool() { return pool_; }

 private:
  CreateOutcome InsertCustomer(pqxx::transaction_base& tx, const NewCustomer& customer);

  ConnectionPool pool_;
  std::shared_ptr<StoreSecrets> secrets_;
};

/// A worker's own connection: the per-customer advisory lock is a session lock on it.
class ReconcileSession {
 public:
  ReconcileSession(const std::string& database_url, std::shared_ptr<StoreSecrets> secrets);
  ~ReconcileSession();
  ReconcileSession(const ReconcileSession&) = delete;
  ReconcileSession& operator=(const ReconcileSession&) = delete;

  /// False when another worker (here or in another provisioner) holds the customer.
  bool TryLock(const std::string& customer_id);
  void Unlock(const std::string& customer_id);
  std::optional<DeploymentRow> Load(const std::string& customer_id);
  /// Records the observation unless the desired state moved on meanwhile (then the phase is left
  /// for the next step and only `next_attempt_at` is set to now). An observation with an applied
  /// generation (> 0) also sets applied_at to now, whether or not the desired state moved on.
  void Record(const std::string& customer_id, std::int64_t seen_desired_generation,
              DesiredState seen_desired_state, const Observation& observation);

 private:
  std::string database_url_;
  std::shared_ptr<StoreSecrets> secrets_;
  PgConnection connection_;
  pqxx::connection_base& Connection();
};

}  // namespace billing::provisioner
