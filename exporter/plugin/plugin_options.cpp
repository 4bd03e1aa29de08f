#include "plugin_options.h"

#include <charconv>
#include <optional>

#include "topic_groups.h"

namespace billing::plugin {
namespace {

struct Unsigned {
  std::string_view name;
  std::uint64_t min;
  std::uint64_t max;
};

Result<std::uint64_t> ParseUnsigned(const std::string& value, const Unsigned& spec) {
  std::uint64_t parsed = 0;
  const auto* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, parsed);
  if (value.empty() || ec != std::errc() || ptr != end || parsed < spec.min || parsed > spec.max) {
    return Error{"plugin_opt_" + std::string(spec.name) + " '" + value +
                 "' must be a whole number from " + std::to_string(spec.min) + " to " +
                 std::to_string(spec.max)};
  }
  return parsed;
}

}  // namespace

Result<PluginOptions> ParsePluginOptions(
    const std::vector<std::pair<std::string, std::string>>& options) {
  PluginOptions parsed;
  for (const auto& option : options) {
    const std::string& name = option.first;
    const std::string& value = option.second;
    auto number = [&](const Unsigned& spec, auto assign) -> std::optional<Error> {
      auto result = ParseUnsigned(value, spec);
      if (!result.ok()) return result.failure();
      assign(result.value());
      return std::nullopt;
    };
    std::optional<Error> error;
    if (name == "billing_snapshot_topic") {
      // A topic name to publish to: valid UTF-8 aside, no wildcards and not empty.
      if (value.empty() || value.find_first_of("+#") != std::string::npos ||
          value.size() > kMaxStringBytes) {
        error = Error{"plugin_opt_billing_snapshot_topic '" + value +
                      "' must be a topic name without '+' or '#', e.g. " +
                      std::string(kDefaultSnapshotTopic)};
      } else {
        parsed.snapshot_topic = value;
      }
    } else if (name == "billing_unmetered_client_ids") {
      // Comma-separated client ids, e.g. the exporter's own.
      for (std::size_t at = 0; at <= value.size();) {
        const auto comma = std::min(value.find(',', at), value.size());
        if (comma > at) parsed.limits.unmetered_client_ids.push_back(value.substr(at, comma - at));
        at = comma + 1;
      }
    } else if (name == "billing_connection_start") {
      if (value == "connect") {
        parsed.connect_from_auth = true;
      } else if (value == "first_publish") {
        parsed.connect_from_auth = false;
      } else {
        error = Error{"plugin_opt_billing_connection_start '" + value +
                      "' must be connect (from CONNECT; needs a password file or an "
                      "authentication plugin) or first_publish"};
      }
    } else if (name == "billing_snapshot_interval") {
      error = number({"billing_snapshot_interval", 1, 3600},
                     [&](std::uint64_t v) { parsed.snapshot_interval = std::chrono::seconds(v); });
    } else if (name == "billing_max_clients") {
      error = number({"billing_max_clients", 1, 100000},
                     [&](std::uint64_t v) { parsed.limits.max_clients = v; });
    } else if (name == "billing_topic_group_levels") {
      error = number({"billing_topic_group_levels", 1, 32},
                     [&](std::uint64_t v) { parsed.limits.topic_group_levels = v; });
    } else if (name == "billing_max_topic_groups") {
      error = number({"billing_max_topic_groups", 1, 100000},
                     [&](std::uint64_t v) { parsed.limits.max_topic_groups = v; });
    } else {
      error = Error{"plugin_opt_" + name +
                    " is not an option of the billing plugin; it knows "
                    "billing_snapshot_topic, billing_snapshot_interval, billing_max_clients, "
                    "billing_topic_group_levels, billing_max_topic_groups, "
                    "billing_unmetered_client_ids and billing_connection_start"};
    }
    // Mosquitto gives a plugin the plugin_opt_ lines that follow its own `plugin` line, so an
    // unknown name is a typo: refusing it beats silently running with a default.
    if (error) return *error;
  }
  return parsed;
}

}  // namespace billing::plugin
