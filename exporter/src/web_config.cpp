#include "web_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <set>

namespace billing::exporter {

using common::Error;
using common::Result;

namespace {

struct Invalid {
  Error error;
};

[[noreturn]] void Fail(std::string field, std::string message) {
  throw Invalid{{.message = std::move(message), .field = std::move(field)}};
}

void CheckKeys(const YAML::Node& node, const std::string& where,
               const std::set<std::string>& supported) {
  if (!node.IsMap()) Fail(where, "must be a mapping");
  for (const auto& entry : node) {
    const auto key = entry.first.as<std::string>();
    if (!supported.count(key)) {
      std::string list;
      for (const auto& name : supported) list += (list.empty() ? "" : ", ") + name;
      Fail(where.empty() ? key : where + "." + key,
           "is not supported by billing-exporter (supported: " + list + "); remove it");
    }
  }
}

std::string String(const YAML::Node& node, const std::string& field) {
  if (!node.IsScalar()) Fail(field, "must be a string");
  return node.as<std::string>();
}

TlsServerConfig ParseTls(const YAML::Node& node) {
  const std::string where = "tls_server_config";
  CheckKeys(node, where,
            {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"});
  TlsServerConfig tls;
  if (node["cert_file"]) tls.cert_file = String(node["cert_file"], where + ".cert_file");
  if (node["key_file"]) tls.key_file = String(node["key_file"], where + ".key_file");
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    Fail(where,
         "needs both cert_file and key_file (PEM files), or remove tls_server_config to "
         "serve plain HTTP");
  }
  if (node["client_ca_file"])
    tls.client_ca_file = String(node["client_ca_file"], where + ".client_ca_file");
  if (node["client_auth_type"]) {
    tls.client_auth_type = String(node["client_auth_type"], where + ".client_auth_type");
    static const std::array<std::string, 5> kTypes = {
        "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert"};
    if (std::find(kTypes.begin(), kTypes.end(), tls.client_auth_type) == kTypes.end()) {
      Fail(where + ".client_auth_type",
           "'" + tls.client_auth_type +
               "' is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, "
               "VerifyClientCertIfGiven, RequireAndVerifyClientCert");
    }
  }
  const bool verifies = tls.client_auth_type == "VerifyClientCertIfGiven" ||
                        tls.client_auth_type == "RequireAndVerifyClientCert";
  if (verifies && tls.client_ca_file.empty()) {
    Fail(where + ".client_ca_file", "is required with client_auth_type " + tls.client_auth_type +
                                        " (the CAs client certificates are verified against)");
  }
  if (!verifies && !tls.client_ca_file.empty()) {
    Fail(where + ".client_auth_type",
         "client_ca_file is set but client_auth_type " + tls.client_auth_type +
             " never verifies against it; use RequireAndVerifyClientCert or "
             "VerifyClientCertIfGiven");
  }
  if (node["min_version"]) {
    tls.min_version = String(node["min_version"], where + ".min_version");
    if (tls.min_version != "TLS12" && tls.min_version != "TLS13") {
      Fail(where + ".min_version", "'" + tls.min_version + "' is not TLS12 or TLS13");
    }
  }
  return tls;
}

}  // namespace

bool IsBcryptHash(std::string_view hash) {
  // $2b$10$ + 22 characters of salt + 31 of digest, in bcrypt's base64 alphabet.
  if (hash.size() != 60 || hash[0] != '$' || hash[1] != '2' || hash[3] != '$' || hash[6] != '$')
    return false;
  if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return false;
  if (hash[4] < '0' || hash[4] > '3' || hash[5] < '0' || hash[5] > '9') return false;
  const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
  if (cost < 4 || cost > 31) return false;
  return std::all_of(hash.begin() + 7, hash.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '/';
  });
}

Result<WebConfig> ParseWebConfig(std::string_view yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return Error{.message = std::string("is not valid YAML: ") + e.what(), .field = "(file)"};
  }
  WebConfig config;
  if (!root || root.IsNull()) return config;  // an empty file: plain HTTP, no users
  try {
    CheckKeys(root, "", {"tls_server_config", "basic_auth_users"});
    if (const auto tls = root["tls_server_config"]) config.tls = ParseTls(tls);
    if (const auto users = root["basic_auth_users"]) {
      if (!users.IsMap()) Fail("basic_auth_users", "must map user names to bcrypt hashes");
      for (const auto& entry : users) {
        const auto user = entry.first.as<std::string>();
        const std::string field = "basic_auth_users." + user;
        if (user.empty() || user.find(':') != std::string::npos) {
          Fail(field, "a user name must be non-empty and contain no ':' (HTTP basic auth)");
        }
        const auto hash = String(entry.second, field);
        if (!IsBcryptHash(hash)) {
          Fail(field,
               "is not a bcrypt hash ($2b$<cost>$...; make one with `htpasswd -nbB user "
               "password` or Python's bcrypt.hashpw)");
        }
        config.basic_auth_users.emplace(user, hash);
      }
    }
  } catch (const Invalid& invalid) {
    return invalid.error;
  } catch (const YAML::Exception& e) {
    return Error{.message = std::string("unexpected structure: ") + e.what(), .field = "(file)"};
  }
  return config;
}

}  // namespace billing::exporter
