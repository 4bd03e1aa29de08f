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
/// what is in it. Members are omitted when empty.
nlohmann::json RedactedRequest(std::string_view query, std::string_view body);

/// Whether a call goes into the trail: a method that changes state (not GET, HEAD or OPTIONS)
/// on a known API route, unless it was refused before it did anything, for want of a credential
/// (401) or by a rate limit (429): those are counted by iotistic_provisioner_http_requests_total
/// instead, so that an anonymous flood costs no write and does not grow the table.
bool IsAudited(std::string_view method, std::string_view route, int status);

}  // namespace billing::provisioner
