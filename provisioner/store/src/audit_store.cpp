#include "audit_store.h"

#include <pqxx/pqxx>

#include "migrations.h"

namespace billing::provisioner {
namespace {

constexpr char kUtc[] = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";

std::string Utc(const std::string& column) {
  return "to_char(" + column + " AT TIME ZONE 'UTC', " + kUtc + ")";
}

// A SQL NULL for nullopt (libpqxx 6 has no parameter conversion of std::optional).
const char* NullableParameter(const std::optional<std::string>& value) {
  return value ? value->c_str() : nullptr;
}

std::optional<std::string> OptionalText(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return field.as<std::string>();
}

}  // namespace

bool AuditStore::AddAdminToken(const std::string& name, const std::string& token_hash) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto result = tx.exec_params(
      "INSERT INTO admin_tokens (name, token_hash) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
      name, token_hash);
  tx.commit();
  return result.affected_rows() > 0;
}

std::optional<AuditStore::TokenName> AuditStore::AdminTokenName(const std::string& token_hash) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto result = tx.exec_params(
      "SELECT name, revoked_at IS NOT NULL FROM admin_tokens WHERE token_hash = $1", token_hash);
  tx.commit();
  if (result.empty()) return std::nullopt;
  return TokenName{result[0][0].as<std::string>(), result[0][1].as<bool>()};
}

bool AuditStore::RevokeAdminToken(const std::string& name) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto result = tx.exec_params(
      "UPDATE admin_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", name);
  tx.commit();
  return result.affected_rows() > 0;
}

std::vector<AdminToken> AuditStore::AdminTokens() {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto result = tx.exec("SELECT name, " + Utc("created_at") + ", " + Utc("revoked_at") +
                              " FROM admin_tokens ORDER BY name");
  tx.commit();
  std::vector<AdminToken> tokens;
  for (const auto& row : result) {
    tokens.push_back({row[0].as<std::string>(), row[1].as<std::string>(), OptionalText(row[2])});
  }
  return tokens;
}

std::int64_t AuditStore::Append(const AuditEntry& entry) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  // Ids come from a sequence when the INSERT runs, but become visible when their transaction
  // commits: two appends at once could commit 11 before 10, and a reader that saw 11 would never
  // read 10. One append at a time (each a single short INSERT) keeps the two orders the same.
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", kAuditLogLock);
  const auto result = tx.exec_params(
      "INSERT INTO audit_log (credential, client, method, route, customer_id, request, status, "
      "error) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) RETURNING id",
      entry.credential, entry.client, entry.method, entry.route,
      NullableParameter(entry.customer_id), entry.request, entry.status,
      NullableParameter(entry.error));
  tx.commit();
  return result[0][0].as<std::int64_t>();
}

std::vector<AuditEntry> AuditStore::After(std::int64_t since, std::size_t limit) {
  auto lease = pool_.Acquire();
  pqxx::work tx(*lease);
  const auto result = tx.exec_params(
      "SELECT id, " + Utc("at") +
          ", credential, client, method, route, customer_id, request::text, status, error "
          "FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
      since, static_cast<std::int64_t>(limit));
  tx.commit();
  std::vector<AuditEntry> entries;
  for (const auto& row : result) {
    entries.push_back({row[0].as<std::int64_t>(), row[1].as<std::string>(),
                       row[2].as<std::string>(), row[3].as<std::string>(), row[4].as<std::string>(),
                       row[5].as<std::string>(), OptionalText(row[6]), row[7].as<std::string>(),
                       row[8].as<int>(), OptionalText(row[9])});
  }
  return entries;
}

}  // namespace billing::provisioner
