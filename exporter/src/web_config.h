// The web configuration file every Prometheus exporter user knows (exporter-toolkit's
// --web.config.file): TLS for the listener and basic-auth users with bcrypt hashes. Pure: text in,
// a validated value out; every error names the YAML path and the fix.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "billing/common/result.h"

namespace billing::exporter {

struct TlsServerConfig {
  std::string cert_file;       // PEM certificate (chain: leaf first)
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // PEM CAs that client certificates must chain to; empty: none
  // NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or
  // RequireAndVerifyClientCert (exporter-toolkit's names).
  std::string client_auth_type = "NoClientCert";
  std::string min_version = "TLS12";  // TLS12 or TLS13
};

struct WebConfig {
  std::optional<TlsServerConfig> tls;
  std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash ($2a$, $2b$, $2y$)
};

/// Parses the YAML text of a web configuration file. Keys the exporter does not implement
/// (cipher_suites, http_server_config, ...) are errors, never silently ignored: a setting an
/// operator relies on for security must not be dropped. Errors name the YAML path in
/// Error::field ("tls_server_config.cert_file", "basic_auth_users.alice", "(file)").
common::Result<WebConfig> ParseWebConfig(std::string_view yaml_text);

/// True if `hash` has the shape of a bcrypt hash ($2a$/$2b$/$2y$, cost 04-31, 53 characters of
/// salt and digest).
bool IsBcryptHash(std::string_view hash);

}  // namespace billing::exporter
