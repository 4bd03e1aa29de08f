// `provisioner serve` configuration: flags and environment, validated up front. Every error
// names the flag or variable and says what would be valid. Pure (getenv is injected).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "api.h"
#include "billing/provisioner/result.h"
#include "reconciler.h"
#include "usage_scheduler.h"

namespace billing::provisioner {

struct ServeConfig {
  ApiOptions api;
  std::string database_url;
  std::string signing_key_file;
  std::string chart_dir;
  std::string values_file;  // optional platform values over the chart's
  ReconcilerOptions reconciler;
  std::optional<UsageScheduleOptions> usage;  // set when PROMETHEUS_URL is
};

/// Reads `args` (after "serve") and the environment. `default_chart_dir` is used when
/// PROVISIONER_CHART_DIR is unset.
Result<ServeConfig> ParseServeConfig(const std::vector<std::string>& args,
                                     const std::function<const char*(const char*)>& getenv,
                                     const std::string& default_chart_dir);

extern const char kServeUsage[];

}  // namespace billing::provisioner
