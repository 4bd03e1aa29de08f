// The plugin's options (`plugin_opt_<name> <value>` lines in mosquitto.conf), parsed and validated
// apart from the broker so that every error names the option and the fix, and so that the parser
// can be fuzzed.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "billing/common/result.h"
#include "meter.h"

namespace billing::plugin {

using common::Error;
using common::Result;

inline constexpr std::string_view kDefaultSnapshotTopic = "$SYS/billing/v1/snapshot";

struct PluginOptions {
  std::string snapshot_topic{kDefaultSnapshotTopic};
  std::chrono::milliseconds snapshot_interval{std::chrono::seconds(5)};
  MeterLimits limits;
  // true: connection time starts at CONNECT (the plugin watches authentication,
  // MOSQ_EVT_BASIC_AUTH). false: at the client's first PUBLISH; for brokers that accept user names
  // without any password check, which Mosquitto 2.0 stops doing once a plugin watches
  // authentication.
  bool connect_from_auth = true;
};

/// `options` are the (name, value) pairs the broker passes, names without "plugin_opt_". An
/// error names the option as written in mosquitto.conf and the fix.
Result<PluginOptions> ParsePluginOptions(
    const std::vector<std::pair<std::string, std::string>>& options);

}  // namespace billing::plugin
