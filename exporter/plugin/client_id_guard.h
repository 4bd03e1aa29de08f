// The client-id guard's decision, apart from the broker so that it can be tested alone: a
// CONNECT that uses the reserved client id (the billing exporter's persistent session) is refused
// unless it comes with the reserved user name; every other CONNECT is left to the broker's other
// checks (its password file), which still verify the password of the reserved user too.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "billing/common/result.h"

namespace billing::plugin {

struct GuardOptions {
  std::string client_id;  // plugin_opt_client_id
  std::string username;   // plugin_opt_username
};

enum class GuardDecision { kRefuse, kDefer };

inline GuardDecision DecideConnect(const GuardOptions& options, std::string_view client_id,
                                   std::optional<std::string_view> username) {
  if (client_id != options.client_id) return GuardDecision::kDefer;
  return username && *username == options.username ? GuardDecision::kDefer : GuardDecision::kRefuse;
}

/// Both options are required and non-empty; the error names the option as written in
/// mosquitto.conf.
inline common::Result<GuardOptions> ParseGuardOptions(
    const std::vector<std::pair<std::string, std::string>>& options) {
  GuardOptions parsed;
  for (const auto& [key, value] : options) {
    if (key == "client_id") {
      parsed.client_id = value;
    } else if (key == "username") {
      parsed.username = value;
    } else {
      return common::Error{"plugin_opt_" + key + ": unknown option (known: plugin_opt_client_id, " +
                           "plugin_opt_username)"};
    }
  }
  if (parsed.client_id.empty()) {
    return common::Error{"plugin_opt_client_id: required (the client id to reserve)"};
  }
  if (parsed.username.empty()) {
    return common::Error{
        "plugin_opt_username: required (the only user that may use the client id)"};
  }
  return parsed;
}

}  // namespace billing::plugin
