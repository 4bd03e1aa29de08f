// audit: what of an API call goes into the audit trail (audit_store.h), as pure functions.
// The trail records what was asked without ever holding a secret: the database, its backups and
// whoever reads the trail through the admin API see the request with its secrets redacted.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace billing::provisioner {

inline constexpr char kRedacted[] = "[redacted]";

/// Whether a JSON key or query parameter names a secret: its lower-case form contains password,
/// token, secret, key, hash or credential ("license_key", "passwordHash", "refresh_token").
bool IsSecretName(std::string_view name);

/// The request as recorded: {"query": {name: value}, "body": <the JSON body>}, where every value
/// under a secret name (IsSecretName), at any depth and in arrays too, is "[redacted]", and a
/// body that is not JSON is only counted ({"body_bytes": N}): it is kept out, since nothing says
/// what is in it. Objects and arrays nested deeper than 32 levels are "[nested too deep]".
/// Members are omitted when empty.
nlohmann::json RedactedRequest(std::string_view query, std::string_view body);

/// Whether a call may change state: any method but GET, HEAD and OPTIONS, on an /api/ path.
bool IsStateChanging(std::string_view method, std::string_view path);

/// Whether a call goes into the trail: a method that changes state (not GET, HEAD or OPTIONS)
/// on a known API route, except answers of a rate limit (429) and refusals (4xx) of an anonymous
/// caller (`credential` "none" or "invalid": no bearer, or one that opens nothing), which
/// iotistic_provisioner_http_requests_total counts instead: a flood by someone without a
/// credential costs no write and does not grow the table. A revoked admin token, a customer on
/// an admin route and every credential's other answers are recorded.
bool IsAudited(std::string_view method, std::string_view route, int status,
               std::string_view credential);

/// The client as recorded: the peer's address, then " (X-Forwarded-For: <the header's first 256
/// bytes>)" when the header was sent, with every byte outside printable ASCII as '?'.
std::string AuditedClient(std::string_view peer, std::string_view forwarded_for);

}  // namespace billing::provisioner
