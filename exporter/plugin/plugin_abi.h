// What every plugin of the project's shares at Mosquitto's plugin boundary (API version 5 of
// Mosquitto 2.0): the version handshake and the options as plain pairs for a pure parser.
// Header-only, so that each plugin module stays one self-contained .so.
#pragma once

#include <mosquitto_plugin.h>

#include <string>
#include <utility>
#include <vector>

namespace billing::plugin {

/// mosquitto_plugin_version's answer: 5 when the broker offers it, else -1 (refused).
inline int NegotiatePluginVersion(int supported_version_count, const int* supported_versions) {
  for (int i = 0; i < supported_version_count; ++i) {
    if (supported_versions[i] == 5) return 5;
  }
  return -1;
}

/// The `plugin_opt_<name> <value>` lines as (name, value) pairs; a missing key or value is "".
inline std::vector<std::pair<std::string, std::string>> OptionPairs(const mosquitto_opt* options,
                                                                    int option_count) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (int i = 0; i < option_count; ++i) {
    pairs.emplace_back(options[i].key != nullptr ? options[i].key : "",
                       options[i].value != nullptr ? options[i].value : "");
  }
  return pairs;
}

}  // namespace billing::plugin
