#include "store.h"

#include <sys/socket.h>

#include <chrono>
#include <pqxx/pqxx>
#include <stdexcept>

#include "billing/common/log.h"
#include "migrations.h"

namespace billing::provisioner {
namespace {

constexpr int kCustomerLockClass = 7217003;  // pg_advisory_lock(class, hashtext(customer))

const char* const kDeploymentColumns =
    "customer_id, desired_state, desired_generation, applied_generation, chart_values::text, "
    "phase, message, components::text, attempts, "
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "extract(epoch FROM now() - applied_at)::float8, "
    "coalesce(to_char(purge_after AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')";

// Opens the secret chart values in place; a value that does not open is reported in
// secrets_error and every secret path is removed, so nothing sealed or half-opened is rendered.
void OpenSecrets(StoreSecrets& secrets, DeploymentRow& d) {
  auto opened = OpenSecretValues(secrets.box.get(), d.customer_id, d.chart_values);
  if (!opened.ok()) {
    d.secrets_error = "deployments.chart_values: " + opened.error();
    for (const auto path : kSecretChartValuePaths) {
      nlohmann::ordered_json* parent = &d.chart_values;
      std::string_view rest = path;
      for (auto dot = rest.find('.'); dot != std::string_view::npos && parent->is_object();
           dot = rest.find('.')) {
        const auto it = parent->find(std::string(rest.substr(0, dot)));
        parent = it == parent->end() ? nullptr : &*it;
        if (parent == nullptr) break;
        rest.remove_prefix(dot + 1);
      }
      if (parent != nullptr && parent->is_object()) parent->erase(std::string(rest));
    }
    return;
  }
  if (opened.value().clear == 0) return;
  secrets.clear_reads += opened.value().clear;
  if (secrets.box && !secrets.clear_logged.exchange(true)) {
    billing::common::Log(billing::common::LogLevel::kWarn, "store",
                         "customer " + d.customer_id + ": " + std::to_string(opened.value().clear) +
                             " secret chart values are stored in clear (written before "
                             "PROVISIONER_ENCRYPTION_KEY_FILE was set); `provisioner "
                             "rotate-encryption-key` seals every such value (logged once)");
  }
}

DeploymentRow ToDeployment(const pqxx::row& row, StoreSecrets& secrets) {
  DeploymentRow d;
  d.customer_id = row[0].as<std::string>();
  const auto desired = ParseDesiredState(row[1].as<std::string>());
  if (!desired)
    throw std::runtime_error("deployments.desired_state: unknown value " +
                             row[1].as<std::string>());
  d.desired_state = *desired;
  d.desired_generation = row[2].as<std::int64_t>();
  d.applied_generation = row[3].as<std::int64_t>();
  // jsonb does not keep member order; values are maps merged by key, so order does not matter.
  d.chart_values = nlohmann::ordered_json::parse(row[4].as<std::string>());
  const auto phase = ParsePhase(row[5].as<std::string>());
  if (!phase)
    throw std::runtime_error("deployments.phase: unknown value " + row[5].as<std::string>());
  d.phase = *phase;
  d.message = row[6].as<std::string>();
  d.components = nlohmann::json::parse(row[7].as<std::string>());
  d.attempts = row[8].as<int>();
  d.updated_at = row[9].as<std::string>();
  if (!row[10].is_null()) d.seconds_since_apply = row[10].as<double>();
  d.purge_after = row[11].as<std::string>();
  OpenSecrets(secrets, d);
  return d;
}

std::string Sealed(const StoreSecrets& secrets, const std::string& customer_id,
                   nlohmann::ordered_json values) {
  if (secrets.box) SealSecretValues(*secrets.box, customer_id, values);
  return values.dump();
}

std::optional<DeploymentRow> SelectDeployment(pqxx::connection_base& connection,
                                              StoreSecrets& secrets,
                                              const std::string& customer_id) {
  pqxx::nontransaction tx(connection);
  const auto rows = tx.exec_params(
      std::string("SELECT ") + kDeploymentColumns + " FROM deployments WHERE customer_id = $1",
      customer_id);
  if (rows.empty()) return std::nullopt;
  return ToDeployment(rows[0], secrets);
}

}  // namespace

ConnectionPool::ConnectionPool(std::string database_url, std::size_t size,
                               std::chrono::milliseconds operation_timeout)
    : database_url_(std::move(database_url)),
      size_(size == 0 ? 1 : size),
      operation_timeout_(operation_timeout) {
  if (operation_timeout_.count() > 0) {
    watchdog_ = std::jthread([this](const std::stop_token& stop) { CutOverdueLeases(stop); });
  }
}

ConnectionPool::~ConnectionPool() = default;

ConnectionPool::Lease::Lease(ConnectionPool& pool, PgConnection connection)
    : pool_(pool),
      connection_(std::move(connection)),
      id_(pool_.StartWatching(connection_->sock())) {}

ConnectionPool::Lease::~Lease() { pool_.Release(id_, std::move(connection_)); }

ConnectionPool::Lease ConnectionPool::Acquire() { return Lease(*this, Checkout()); }

PgConnection ConnectionPool::Checkout() {
  std::unique_lock lock(mutex_);
  // Bounded: a hung database must turn into an error answer, not a request that never returns.
  const auto wait = operation_timeout_.count() > 0
                        ? operation_timeout_
                        : std::chrono::milliseconds(std::chrono::seconds(30));
  if (!available_.wait_for(lock, wait, [&] { return !idle_.empty() || open_ < size_; })) {
    throw std::runtime_error("store: no database connection free within " +
                             std::to_string(wait.count()) + " ms");
  }
  if (!idle_.empty()) {
    auto connection = std::move(idle_.back());
    idle_.pop_back();
    return connection;
  }
  ++open_;
  lock.unlock();
  try {
    // Opening is bounded by libpq's connect_timeout (serve puts one in DATABASE_URL).
    return Connect(database_url_);
  } catch (...) {
    lock.lock();
    --open_;
    available_.notify_one();
    throw;
  }
}

std::uint64_t ConnectionPool::StartWatching(int socket) {
  std::lock_guard lock(mutex_);
  const std::uint64_t id = ++next_lease_id_;
  if (operation_timeout_.count() > 0 && socket >= 0) {
    leased_.emplace(id,
                    Watched{socket, std::chrono::steady_clock::now() + operation_timeout_, false});
    watchdog_wake_.notify_one();
  }
  return id;
}

void ConnectionPool::Release(std::uint64_t id, PgConnection connection) {
  std::lock_guard lock(mutex_);
  // Unwatched before the connection can close: the watchdog never touches a reused descriptor.
  leased_.erase(id);
  if (connection && connection->is_open()) {
    idle_.push_back(std::move(connection));
  } else {
    --open_;  // broken: the next Acquire opens a fresh one
  }
  available_.notify_one();
}

void ConnectionPool::CutOverdueLeases(const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    const auto now = std::chrono::steady_clock::now();
    auto next_check = now + std::chrono::seconds(1);
    for (auto& [id, watched] : leased_) {
      if (watched.cut) continue;
      if (watched.deadline > now) {
        next_check = std::min(next_check, watched.deadline);
        continue;
      }
      // The blocked read returns at once and libpq marks the connection bad; the lease's owner
      // sees pqxx::broken_connection and the pool drops the connection when it comes back.
      ::shutdown(watched.socket, SHUT_RDWR);
      watched.cut = true;
      billing::common::Log(
          billing::common::LogLevel::kWarn, "store",
          "the database did not answer within " + std::to_string(operation_timeout_.count()) +
              " ms: connection cut, the call fails and a new connection replaces it");
    }
    watchdog_wake_.wait_until(lock, stop, next_check, [] { return false; });
  }
}

Store::Store(const std::string& database_url, std::size_t pool_size,
             std::shared_ptr<const SecretBox> secret_box,
             std::chrono::milliseconds operation_timeout)
    : pool_(database_url, pool_size, operation_timeout),
      secrets_(std::make_shared<StoreSecrets>(std::move(secret_box))) {
  ApplyMigrations(database_url);
}

Store::CreateOutcome Store::InsertCustomer(pqxx::transaction_base& tx, const NewCustomer& c) {
  // Serialises signups of one address (the unique index would too, but as an error).
  tx.exec_params("SELECT pg_advisory_xact_lock(7217004, hashtext(lower($1)))", c.email);
  if (!tx.exec_params("SELECT 1 FROM customers WHERE lower(email) = lower($1)", c.email).empty()) {
    return CreateOutcome::kEmailTaken;
  }
  const auto inserted = tx.exec_params(
      "INSERT INTO customers (id, email, company_name, password_hash, plan) "
      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
      c.id, c.email, c.company_name, c.password_hash, c.plan);
  if (inserted.affected_rows() == 0) return CreateOutcome::kIdTaken;
  tx.exec_params(
      "INSERT INTO deployments (customer_id, desired_state, chart_values) "
      "VALUES ($1, 'present', $2::jsonb)",
      c.id, Sealed(*secrets_, c.id, c.chart_values));
  return CreateOutcome::kCreated;
}

Store::CreateOutcome Store::CreateCustomer(const NewCustomer& c) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto outcome = InsertCustomer(tx, c);
  if (outcome == CreateOutcome::kCreated) tx.commit();
  return outcome;
}

std::int64_t Store::CountPendingSignups() {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  return tx.exec("SELECT count(*) FROM pending_signups WHERE expires_at > now()")[0][0]
      .as<std::int64_t>();
}

void Store::AddPendingSignup(const std::string& token_hash, const PendingSignup& signup,
                             std::int64_t expires_at) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  // Expired signups go here rather than on a timer: they are refused everywhere already, and
  // this keeps the table as small as the live ones.
  tx.exec("DELETE FROM pending_signups WHERE expires_at <= now()");
  tx.exec_params(
      "INSERT INTO pending_signups (token_hash, email, company_name, password_hash, plan, "
      "expires_at) VALUES ($1, $2, $3, $4, $5, to_timestamp($6))",
      token_hash, signup.email, signup.company_name, signup.password_hash, signup.plan, expires_at);
  tx.commit();
}

std::optional<PendingSignup> Store::PendingSignupByToken(const std::string& token_hash) {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  const auto rows = tx.exec_params(
      "SELECT email, company_name, password_hash, plan FROM pending_signups "
      "WHERE token_hash = $1 AND expires_at > now()",
      token_hash);
  if (rows.empty()) return std::nullopt;
  return PendingSignup{rows[0][0].as<std::string>(), rows[0][1].as<std::string>(),
                       rows[0][2].as<std::string>(), rows[0][3].as<std::string>()};
}

Store::CreateOutcome Store::CompleteSignup(const std::string& token_hash,
                                           const NewCustomer& customer) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  // Taken in this transaction: of two verifications of one link, the second finds none. Any
  // outcome but kCreated rolls back, so the link still works for a retry.
  const auto taken = tx.exec_params(
      "DELETE FROM pending_signups WHERE token_hash = $1 AND expires_at > now() AND "
      "lower(email) = lower($2) RETURNING 1",
      token_hash, customer.email);
  if (taken.empty()) return CreateOutcome::kTokenUnknown;
  const auto outcome = InsertCustomer(tx, customer);
  if (outcome != CreateOutcome::kCreated) return outcome;
  // The address is verified and has its customer: the other links sent to it are void.
  tx.exec_params("DELETE FROM pending_signups WHERE lower(email) = lower($1)", customer.email);
  tx.commit();
  return outcome;
}

std::optional<DeploymentRow> Store::Deployment(const std::string& customer_id) {
  auto lease = pool_.Acquire();
  return SelectDeployment(*lease, *secrets_, customer_id);
}

std::optional<std::string> Store::CustomerPlan(const std::string& customer_id) {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  const auto rows = tx.exec_params("SELECT plan FROM customers WHERE id = $1", customer_id);
  if (rows.empty()) return std::nullopt;
  return rows[0][0].as<std::string>();
}

bool Store::CustomerExists(const std::string& customer_id) {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  return !tx.exec_params("SELECT 1 FROM customers WHERE id = $1", customer_id).empty();
}

std::optional<Store::Credentials> Store::CustomerCredentials(const std::string& email) {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  const auto rows = tx.exec_params(
      "SELECT id, password_hash, email FROM customers WHERE lower(email) = lower($1)", email);
  if (rows.empty()) return std::nullopt;
  return Credentials{rows[0][0].as<std::string>(), rows[0][1].as<std::string>(),
                     rows[0][2].as<std::string>()};
}

std::optional<Store::Credentials> Store::CustomerCredentialsById(const std::string& customer_id) {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  const auto rows =
      tx.exec_params("SELECT id, password_hash, email FROM customers WHERE id = $1", customer_id);
  if (rows.empty()) return std::nullopt;
  return Credentials{rows[0][0].as<std::string>(), rows[0][1].as<std::string>(),
                     rows[0][2].as<std::string>()};
}

bool Store::ReplacePasswordHash(const std::string& customer_id, const std::string& old_hash,
                                const std::string& new_hash) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto result =
      tx.exec_params("UPDATE customers SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
                     customer_id, old_hash, new_hash);
  tx.commit();
  return result.affected_rows() > 0;
}

namespace {

// After a password change or reset, no session or reset link made before it keeps working.
void RevokeSessions(pqxx::work& tx, const std::string& customer_id) {
  tx.exec_params("UPDATE refresh_tokens SET revoked = true WHERE customer_id = $1 AND NOT revoked",
                 customer_id);
  tx.exec_params(
      "UPDATE password_resets SET used_at = now() WHERE customer_id = $1 AND used_at IS NULL",
      customer_id);
}

}  // namespace

bool Store::ChangePassword(const std::string& customer_id, const std::string& old_hash,
                           const std::string& new_hash) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto result =
      tx.exec_params("UPDATE customers SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
                     customer_id, old_hash, new_hash);
  if (result.affected_rows() == 0) return false;
  RevokeSessions(tx, customer_id);
  tx.commit();
  return true;
}

bool Store::AddPasswordReset(const std::string& token_hash, const std::string& customer_id,
                             std::int64_t expires_at, int max_per_hour) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  // Serialises the customer's resets, so two concurrent requests cannot both pass the count.
  tx.exec_params("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE", customer_id);
  const auto recent = tx.exec_params(
                            "SELECT count(*) FROM password_resets WHERE customer_id = $1 AND "
                            "created_at > now() - interval '1 hour'",
                            customer_id)[0][0]
                          .as<int>();
  if (recent >= max_per_hour) return false;
  tx.exec_params(
      "INSERT INTO password_resets (token_hash, customer_id, expires_at) "
      "VALUES ($1, $2, to_timestamp($3))",
      token_hash, customer_id, expires_at);
  tx.commit();
  return true;
}

std::optional<Store::Credentials> Store::PasswordResetCustomer(const std::string& token_hash) {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  const auto rows = tx.exec_params(
      "SELECT c.id, c.password_hash, c.email FROM password_resets r JOIN customers c "
      "ON c.id = r.customer_id WHERE r.token_hash = $1 AND r.used_at IS NULL AND "
      "r.expires_at > now()",
      token_hash);
  if (rows.empty()) return std::nullopt;
  return Credentials{rows[0][0].as<std::string>(), rows[0][1].as<std::string>(),
                     rows[0][2].as<std::string>()};
}

std::optional<std::string> Store::CompletePasswordReset(const std::string& token_hash,
                                                        const std::string& new_hash) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  // One UPDATE: of two concurrent uses of the same link only one finds it unused.
  const auto rows = tx.exec_params(
      "UPDATE password_resets SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL AND "
      "expires_at > now() RETURNING customer_id",
      token_hash);
  if (rows.empty()) return std::nullopt;
  const auto customer_id = rows[0][0].as<std::string>();
  tx.exec_params("UPDATE customers SET password_hash = $2 WHERE id = $1", customer_id, new_hash);
  RevokeSessions(tx, customer_id);
  tx.commit();
  return customer_id;
}

void Store::AddRefreshToken(const std::string& token_hash, const std::string& customer_id,
                            std::int64_t expires_at) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  tx.exec_params(
      "INSERT INTO refresh_tokens (token_hash, customer_id, expires_at) "
      "VALUES ($1, $2, to_timestamp($3))",
      token_hash, customer_id, expires_at);
  tx.commit();
}

std::optional<std::string> Store::RotateRefreshToken(const std::string& token_hash,
                                                     const std::string& new_hash,
                                                     std::int64_t new_expires_at) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  // One UPDATE: of two concurrent uses of the same token only one finds it live.
  const auto rows = tx.exec_params(
      "UPDATE refresh_tokens SET revoked = true "
      "WHERE token_hash = $1 AND NOT revoked AND expires_at > now() RETURNING customer_id",
      token_hash);
  if (rows.empty()) {
    // A revoked token presented again was copied: whoever holds its successor may be the thief,
    // so the customer's live tokens all go (OAuth 2.0 security BCP, refresh token rotation).
    tx.exec_params(
        "UPDATE refresh_tokens SET revoked = true WHERE NOT revoked AND customer_id = "
        "(SELECT customer_id FROM refresh_tokens WHERE token_hash = $1 AND revoked)",
        token_hash);
    tx.commit();
    return std::nullopt;
  }
  const auto customer_id = rows[0][0].as<std::string>();
  tx.exec_params(
      "INSERT INTO refresh_tokens (token_hash, customer_id, expires_at) "
      "VALUES ($1, $2, to_timestamp($3))",
      new_hash, customer_id, new_expires_at);
  tx.commit();
  return customer_id;
}

bool Store::RevokeRefreshToken(const std::string& token_hash) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto result = tx.exec_params(
      "UPDATE refresh_tokens SET revoked = true WHERE token_hash = $1 AND NOT revoked", token_hash);
  tx.commit();
  return result.affected_rows() > 0;
}

Store::UpgradeOutcome Store::RequestUpgrade(const std::string& customer_id,
                                            const nlohmann::ordered_json& chart_values,
                                            std::int64_t expected_generation,
                                            const std::optional<std::string>& plan) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto current = tx.exec_params(
      "SELECT desired_state, desired_generation FROM deployments WHERE customer_id = $1 "
      "FOR UPDATE",
      customer_id);
  if (current.empty()) return {ChangeOutcome::kUnknownCustomer};
  if (current[0][0].as<std::string>() != "present" ||
      current[0][1].as<std::int64_t>() != expected_generation) {
    return {ChangeOutcome::kDeleted};
  }
  const auto row = tx.exec_params(
      "UPDATE deployments SET chart_values = $2::jsonb, desired_generation = desired_generation + "
      "1, "
      "phase = CASE WHEN phase = 'Ready' THEN 'Deploying' ELSE phase END, "
      "attempts = 0, next_attempt_at = now(), updated_at = now() "
      "WHERE customer_id = $1 RETURNING desired_generation",
      customer_id, Sealed(*secrets_, customer_id, chart_values));
  if (plan) tx.exec_params("UPDATE customers SET plan = $2 WHERE id = $1", customer_id, *plan);
  tx.commit();
  return {ChangeOutcome::kAccepted, row[0][0].as<std::int64_t>()};
}

namespace {

// The deployment's desired state, its row locked until the transaction ends (nullopt: unknown
// customer): suspend, restore and purge each decide from it and then write.
std::optional<std::string> LockedDesiredState(pqxx::transaction_base& tx,
                                              const std::string& customer_id) {
  const auto rows = tx.exec_params(
      "SELECT desired_state FROM deployments WHERE customer_id = $1 FOR UPDATE", customer_id);
  if (rows.empty()) return std::nullopt;
  return rows[0][0].as<std::string>();
}

}  // namespace

Store::SuspendOutcome Store::RequestSuspend(const std::string& customer_id,
                                            std::int64_t retention_seconds) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto state = LockedDesiredState(tx, customer_id);
  if (!state) return {ChangeOutcome::kUnknownCustomer, ""};
  if (*state == "absent") return {ChangeOutcome::kDeleted, ""};
  if (*state == "present") {
    // A new generation, so the next step applies the scaled-down stack at once.
    tx.exec_params(
        "UPDATE deployments SET desired_state = 'suspended', "
        "purge_after = now() + make_interval(secs => $2), "
        "desired_generation = desired_generation + 1, phase = 'Suspended', "
        "message = 'suspension requested', attempts = 0, next_attempt_at = now(), "
        "updated_at = now() WHERE customer_id = $1",
        customer_id, retention_seconds);
  }
  // Already suspended: idempotent, the retention is not extended.
  const auto purge_after = tx.exec_params(
      "SELECT to_char(purge_after AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
      "FROM deployments WHERE customer_id = $1",
      customer_id)[0][0];
  tx.commit();
  return {ChangeOutcome::kAccepted, purge_after.as<std::string>()};
}

Store::ChangeOutcome Store::RequestRestore(const std::string& customer_id) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto state = LockedDesiredState(tx, customer_id);
  if (!state) return ChangeOutcome::kUnknownCustomer;
  if (*state == "absent") return ChangeOutcome::kDeleted;
  if (*state == "suspended") {
    tx.exec_params(
        "UPDATE deployments SET desired_state = 'present', purge_after = NULL, "
        "desired_generation = desired_generation + 1, phase = 'Deploying', "
        "message = 'restore requested', attempts = 0, next_attempt_at = now(), "
        "updated_at = now() WHERE customer_id = $1",
        customer_id);
  }
  tx.commit();
  return ChangeOutcome::kAccepted;
}

// Deleting, idempotent, from a suspension only: the caller checked, and the WHERE checks again.
constexpr const char* kPurgeSet =
    "desired_state = 'absent', purge_after = NULL, "
    "phase = CASE WHEN phase = 'Deleted' THEN phase ELSE 'Deleting' END, "
    "message = CASE WHEN phase = 'Deleted' THEN message ELSE 'deletion requested' END, "
    "attempts = 0, next_attempt_at = CASE WHEN phase = 'Deleted' THEN next_attempt_at ELSE now() "
    "END, updated_at = CASE WHEN desired_state = 'absent' THEN updated_at ELSE now() END ";

Store::ChangeOutcome Store::RequestPurge(const std::string& customer_id) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto state = LockedDesiredState(tx, customer_id);
  if (!state) return ChangeOutcome::kUnknownCustomer;
  if (*state == "present") return ChangeOutcome::kNotSuspended;
  tx.exec_params(std::string("UPDATE deployments SET ") + kPurgeSet + "WHERE customer_id = $1",
                 customer_id);
  tx.commit();
  return ChangeOutcome::kAccepted;
}

std::vector<std::string> Store::PurgeExpiredSuspensions() {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  std::vector<std::string> purged;
  for (const auto& row : tx.exec(std::string("UPDATE deployments SET ") + kPurgeSet +
                                 "WHERE desired_state = 'suspended' AND purge_after <= now() "
                                 "RETURNING customer_id")) {
    purged.push_back(row[0].as<std::string>());
  }
  tx.commit();
  return purged;
}

std::vector<std::string> Store::DueDeployments(std::size_t limit) {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  std::vector<std::string> due;
  for (const auto& row :
       tx.exec_params("SELECT customer_id FROM deployments WHERE next_attempt_at <= now() "
                      "ORDER BY next_attempt_at LIMIT $1",
                      static_cast<std::int64_t>(limit))) {
    due.push_back(row[0].as<std::string>());
  }
  return due;
}

std::map<std::string, std::int64_t> Store::CountByPhase() {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  std::map<std::string, std::int64_t> counts;
  for (const auto& row : tx.exec("SELECT phase, count(*) FROM deployments GROUP BY phase")) {
    counts[row[0].as<std::string>()] = row[1].as<std::int64_t>();
  }
  return counts;
}

std::vector<std::string> Store::BillableCustomers() {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  std::vector<std::string> ids;
  for (const auto& row :
       tx.exec("SELECT customer_id FROM deployments WHERE phase <> 'Deleted' ORDER BY 1")) {
    ids.push_back(row[0].as<std::string>());
  }
  return ids;
}

std::set<std::string> Store::CustomerIds() {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  std::set<std::string> ids;
  for (const auto& row : tx.exec("SELECT id FROM customers")) ids.insert(row[0].as<std::string>());
  return ids;
}

std::size_t Store::FinalizeUsage(const std::string& customer_id, std::int64_t until) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", kUsageLedgerLock);  // before any row lock
  const auto result = tx.exec_params(
      "UPDATE usage_records SET final = true, finalized_at = now() "
      "WHERE customer_id = $1 AND NOT final AND period_end <= to_timestamp($2)",
      customer_id, until);
  tx.commit();
  return static_cast<std::size_t>(result.affected_rows());
}

std::vector<UsageRecord> Store::Usage(const std::string& customer_id, std::int64_t from,
                                      std::int64_t to) {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  std::vector<UsageRecord> records;
  for (const auto& row : tx.exec_params(
           "SELECT metric, extract(epoch FROM period_start)::bigint, "
           "extract(epoch FROM period_end)::bigint, quantity::float8, complete, final, "
           "coalesce((SELECT sum(a.delta) FROM usage_adjustments a WHERE "
           "a.customer_id = r.customer_id AND a.metric = r.metric AND "
           "a.period_start = r.period_start AND a.period_end = r.period_end), 0)::float8 "
           "FROM usage_records r WHERE customer_id = $1 "
           "AND period_start >= to_timestamp($2) AND period_end <= to_timestamp($3) "
           // The order provisioner usage prints: messages, bytes, rows, storage; then by period.
           "ORDER BY array_position(ARRAY['mqtt_messages', 'mqtt_bytes', 'rows_inserted', "
           "'storage_byte_hours', 'mqtt_connection_minutes', 'mqtt_message_units'], metric), "
           "period_start",
           customer_id, from, to)) {
    UsageRecord r;
    r.customer_id = customer_id;
    r.metric = row[0].as<std::string>();
    r.period = {row[1].as<std::int64_t>(), row[2].as<std::int64_t>()};
    r.quantity = row[3].as<double>();
    r.complete = row[4].as<bool>();
    r.final = row[5].as<bool>();
    r.adjustment = row[6].as<double>();
    records.push_back(std::move(r));
  }
  return records;
}

std::vector<LedgerEntry> Store::LedgerAfter(std::int64_t since, std::size_t limit,
                                            const std::optional<std::string>& customer_id) {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  // One statement, one snapshot: it holds a prefix of the ledger (DESIGN.md, "The usage
  // ledger"), so everything after its last entry is still to come.
  const auto rows = tx.exec_params(
      "SELECT seq, customer_id, metric, extract(epoch FROM period_start)::bigint, "
      "extract(epoch FROM period_end)::bigint, revision, kind, quantity::float8, delta::float8, "
      "complete, final, extract(epoch FROM recorded_at)::bigint FROM usage_ledger "
      "WHERE seq > $1 AND ($2::text IS NULL OR customer_id = $2) ORDER BY seq LIMIT $3",
      since, customer_id, static_cast<std::int64_t>(limit));
  std::vector<LedgerEntry> entries;
  for (const auto& row : rows) {
    LedgerEntry e;
    e.sequence = row[0].as<std::int64_t>();
    e.customer_id = row[1].as<std::string>();
    e.metric = row[2].as<std::string>();
    e.period = {row[3].as<std::int64_t>(), row[4].as<std::int64_t>()};
    e.revision = row[5].as<int>();
    const auto kind = ParseLedgerEntryKind(row[6].as<std::string>());
    if (!kind)
      throw std::runtime_error("usage_ledger.kind: unknown value " + row[6].as<std::string>());
    e.kind = *kind;
    e.quantity = row[7].as<double>();
    e.delta = row[8].as<double>();
    e.complete = row[9].as<bool>();
    e.final = row[10].as<bool>();
    e.recorded_at = row[11].as<std::int64_t>();
    entries.push_back(std::move(e));
  }
  return entries;
}

SecretInventory Store::Secrets() {
  auto lease = pool_.Acquire();
  pqxx::nontransaction tx(*lease);
  SecretInventory inventory;
  for (const auto& row : tx.exec("SELECT chart_values::text FROM deployments")) {
    AddToInventory(nlohmann::ordered_json::parse(row[0].as<std::string>()), inventory);
  }
  return inventory;
}

Result<Store::ResealReport> Store::ResealSecrets() {
  if (!secrets_->box) return Error{"no encryption key configured"};
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  ResealReport report;
  // FOR UPDATE: an upgrade of the same customer waits for the rotation (and then seals under
  // whatever key its provisioner has, which must open with the current configuration).
  const auto rows = tx.exec(
      "SELECT customer_id, chart_values::text FROM deployments ORDER BY customer_id FOR UPDATE");
  for (const auto& row : rows) {
    const auto customer_id = row[0].as<std::string>();
    auto values = nlohmann::ordered_json::parse(row[1].as<std::string>());
    auto resealed = ResealSecretValues(*secrets_->box, customer_id, values);
    if (!resealed.ok()) return Error{"deployments.chart_values: " + resealed.error()};
    const auto& counts = resealed.value();
    report.values.current += counts.current;
    report.values.rotated += counts.rotated;
    report.values.clear += counts.clear;
    if (counts.rotated + counts.clear == 0) continue;
    tx.exec_params("UPDATE deployments SET chart_values = $2::jsonb WHERE customer_id = $1",
                   customer_id, values.dump());
    ++report.customers;
  }
  tx.commit();
  return report;
}

ReconcileSession::ReconcileSession(const std::string& database_url,
                                   std::shared_ptr<StoreSecrets> secrets)
    : database_url_(database_url), secrets_(std::move(secrets)) {}

ReconcileSession::~ReconcileSession() = default;

pqxx::connection_base& ReconcileSession::Connection() {
  // A broken connection also lost its advisory locks: a new one starts with none held.
  if (!connection_ || !connection_->is_open()) {
    connection_ = Connect(database_url_);
  }
  return *connection_;
}

bool ReconcileSession::TryLock(const std::string& customer_id) {
  pqxx::nontransaction tx(Connection());
  return tx
      .exec_params("SELECT pg_try_advisory_lock($1, hashtext($2))", kCustomerLockClass,
                   customer_id)[0][0]
      .as<bool>();
}

void ReconcileSession::Unlock(const std::string& customer_id) {
  if (!connection_ || !connection_->is_open()) return;
  pqxx::nontransaction tx(*connection_);
  tx.exec_params("SELECT pg_advisory_unlock($1, hashtext($2))", kCustomerLockClass, customer_id);
}

std::optional<DeploymentRow> ReconcileSession::Load(const std::string& customer_id) {
  return SelectDeployment(Connection(), *secrets_, customer_id);
}

void ReconcileSession::Record(const std::string& customer_id, std::int64_t seen_desired_generation,
                              DesiredState seen_desired_state, const Observation& o) {
  pqxx::work tx(Connection());
  // A request that arrived during the step (upgrade, delete) keeps its phase and attempts and is
  // looked at again at once (a resync must not report Ready for a generation not yet applied);
  // the observation's components and applied generation (and the time of that apply) still hold.
  tx.exec_params(R"sql(
UPDATE deployments SET
  phase = CASE WHEN desired_state = $3 AND desired_generation = $2 THEN $4 ELSE phase END,
  message = CASE WHEN desired_state = $3 AND desired_generation = $2 THEN $5 ELSE message END,
  components = $6::jsonb,
  applied_generation = coalesce($7::bigint, applied_generation),
  applied_at = CASE WHEN $7::bigint > 0 THEN now() ELSE applied_at END,
  attempts = CASE WHEN desired_state = $3 AND desired_generation = $2 THEN $8 ELSE attempts END,
  next_attempt_at = CASE
    WHEN desired_state <> $3 OR desired_generation <> $2 THEN now()
    WHEN $9::float8 < 0 THEN 'infinity'::timestamptz
    ELSE now() + $9::float8 * interval '1 second' END,
  updated_at = now()
WHERE customer_id = $1
)sql",
                 customer_id, seen_desired_generation, std::string(Name(seen_desired_state)),
                 std::string(Name(o.phase)), o.message, o.components.dump(), o.applied_generation,
                 o.attempts, o.retry_after_seconds);
  tx.commit();
}

}  // namespace billing::provisioner
