// audit_store: the operator's side of the provisioner's PostgreSQL (migration 12): named admin
// tokens, stored as their SHA-256 only, and the append-only audit trail of state-changing calls.
// May not depend on: libcurl, CivetWeb, kube, api, service.
//
// Thread-safety: safe to share, like the ConnectionPool it works through.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store.h"

namespace billing::provisioner {

/// One state-changing API call as recorded. `request` is JSON with every secret redacted by the
/// caller (audit.h); the database only ever sees that.
struct AuditEntry {
  std::int64_t id = 0;     // assigned on append
  std::string at;          // RFC 3339 UTC, assigned on append
  std::string credential;  // "admin:<name>", "revoked:<name>", "customer:<id>", "none", "invalid"
  std::string client;      // the peer's address (and X-Forwarded-For, when given)
  std::string method;
  std::string route;  // the route's pattern, "/api/customers/{id}/deployment"
  std::optional<std::string> customer_id;
  std::string request;  // JSON text
  int status = 0;
  std::optional<std::string> error;  // the answer's "error", when it had one
};

struct AdminToken {
  std::string name;
  std::string created_at;                 // RFC 3339 UTC
  std::optional<std::string> revoked_at;  // RFC 3339 UTC
};

class AuditStore {
 public:
  explicit AuditStore(ConnectionPool& pool) : pool_(pool) {}

  /// Stores a new admin token by its SHA-256 hex; false when the name is taken (revoked names
  /// too: the audit trail keeps naming one token per name).
  bool AddAdminToken(const std::string& name, const std::string& token_hash);
  struct TokenName {
    std::string name;
    bool revoked = false;
  };
  /// The name of the admin token with this SHA-256 hex, live or revoked.
  std::optional<TokenName> AdminTokenName(const std::string& token_hash);
  /// Revokes the token; false when no live token has this name.
  bool RevokeAdminToken(const std::string& name);
  /// Every admin token, live and revoked, by name; never a hash.
  std::vector<AdminToken> AdminTokens();

  /// Appends one entry; returns its id. Appends are serialised (a transaction-level advisory
  /// lock), so ids become visible in their order and a reader paging by id misses none.
  std::int64_t Append(const AuditEntry& entry);
  /// At most `limit` entries with an id above `since`, oldest first.
  std::vector<AuditEntry> After(std::int64_t since, std::size_t limit);

 private:
  ConnectionPool& pool_;
};

}  // namespace billing::provisioner
