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
#include "health_server.h"
#include "mailer.h"
#include "reconciler.h"
#include "usage_scheduler.h"

namespace billing::provisioner {

/// Sealing of the tenants' secrets in the store (PROVISIONER_ENCRYPTION_*). Shared by `serve` and
/// `rotate-encryption-key`.
struct EncryptionConfig {
  std::string key_file;                     // PROVISIONER_ENCRYPTION_KEY_FILE
  std::vector<std::string> previous_files;  // PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES
  bool allow_clear = false;                 // PROVISIONER_ALLOW_UNENCRYPTED_SECRETS=true
};

/// Reads PROVISIONER_ENCRYPTION_KEY_FILE, PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES
/// (comma-separated) and PROVISIONER_ALLOW_UNENCRYPTED_SECRETS. The key file is required unless
/// `allow_clear_opt_out` and the opt-out is set; previous keys need a current one.
Result<EncryptionConfig> ParseEncryptionConfig(
    const std::function<const char*(const char*)>& getenv, bool allow_clear_opt_out);

struct ServeConfig {
  ApiOptions api;
  HealthOptions health;      // --health-listen: /healthz and /metrics for probes and Prometheus
  std::string database_url;  // with WithConnectionDeadlines' settings
  double database_timeout_seconds = 15;  // PROVISIONER_DATABASE_TIMEOUT: each store call
  std::string signing_key_file;
  std::string token_key_file;  // PROVISIONER_TOKEN_KEY_FILE, read by Serve into api.token_key
  std::string chart_dir;
  std::string values_file;  // optional platform values over the chart's
  ReconcilerOptions reconciler;
  std::optional<UsageScheduleOptions> usage;  // set when PROMETHEUS_URL is
  EncryptionConfig encryption;
  std::optional<MailerOptions> mail;  // set when PROVISIONER_SMTP_URL is
};

/// Reads `args` (after "serve") and the environment. `default_chart_dir` is used when
/// PROVISIONER_CHART_DIR is unset.
Result<ServeConfig> ParseServeConfig(const std::vector<std::string>& args,
                                     const std::function<const char*(const char*)>& getenv,
                                     const std::string& default_chart_dir);

/// `database_url` (a postgresql:// URI or key=value connection string) with libpq's deadlines
/// added where it sets none: connect_timeout (the timeout, at least libpq's minimum of 2 s), TCP
/// keepalives (idle 30 s, every 10 s, 3 probes) and tcp_user_timeout (30 s of unacknowledged
/// data), so that a database host that vanished without a reset breaks the connection instead of
/// holding a thread until the kernel gives up (about 15 minutes). Settings given are kept.
std::string WithConnectionDeadlines(std::string database_url, double timeout_seconds);

extern const char kServeUsage[];

}  // namespace billing::provisioner
