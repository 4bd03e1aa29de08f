#include "serve_config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "billing/common/command_line.h"
#include "billing/common/duration.h"

namespace billing::provisioner {

const char kServeUsage[] =
    "usage: provisioner serve [--listen ADDR:PORT] [--health-listen ADDR:PORT] [--workers N]\n"
    "  --listen         where the API listens (default 0.0.0.0:3000)\n"
    "  --health-listen  where /healthz and /metrics listen, with threads of their own, for the\n"
    "                   probes and Prometheus (default 0.0.0.0:3001; must differ from --listen)\n"
    "  --workers        customers reconciled at once (default 4)\n"
    "Environment (required): PROVISIONER_ADMIN_TOKEN (at least 16 characters), DATABASE_URL,\n"
    "  LICENSE_SIGNING_KEY_FILE (PEM Ed25519 or RSA private key), PROVISIONER_DOMAIN_BASE,\n"
    "  PROVISIONER_ENCRYPTION_KEY_FILE (32 random bytes: openssl rand -hex 32; seals the tenants'\n"
    "  secrets in the store; PROVISIONER_ALLOW_UNENCRYPTED_SECRETS=true stores them in clear\n"
    "  instead, for development only), PROVISIONER_TOKEN_KEY_FILE (at least 32 random bytes:\n"
    "  openssl rand -hex 32; signs the customers' access tokens).\n"
    "Optional: PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES (comma-separated; open only, for\n"
    "  provisioner rotate-encryption-key).\n"
    "Optional: KUBECONFIG (else in-cluster credentials), PROVISIONER_CHART_DIR,\n"
    "  PROVISIONER_VALUES_FILE, PROMETHEUS_URL (enables the usage job), PROVISIONER_USAGE_PERIOD\n"
    "  (1h), PROVISIONER_USAGE_LOOKBACK (6h), PROVISIONER_USAGE_INTERVAL (5m),\n"
    "  PROVISIONER_USAGE_SETTLE (2m), PROVISIONER_USAGE_MAX_GAP (5m),\n"
    "  PROVISIONER_USAGE_RETENTION (360h, the metrics store's), PROVISIONER_USAGE_BATCH (200\n"
    "  customers per query), PROVISIONER_USAGE_QUERY_PERIODS (24 periods per query),\n"
    "  PROVISIONER_USAGE_FINAL_AFTER (72h: older periods are final, changes become adjustments),\n"
    "  PROVISIONER_POLL_INTERVAL\n"
    "  (2s), PROVISIONER_RESYNC_INTERVAL (30s), PROVISIONER_REAPPLY_INTERVAL (10m),\n"
    "  PROVISIONER_FAILURE_BACKOFF (5s), PROVISIONER_FAILURE_BACKOFF_MAX (5m),\n"
    "  PROVISIONER_KUBE_MAX_ATTEMPTS (5), PROVISIONER_STEP_TIMEOUT (60s: every Kubernetes request\n"
    "  of one reconcile step, retries included, ends by then),\n"
    "  PROVISIONER_SIGNUP_RATE_PER_MINUTE (10), PROVISIONER_SIGNUP_BURST (20),\n"
    "  PROVISIONER_DEPLOYMENTS_PER_HOUR (120, every client together; over it signups get 503),\n"
    "  PROVISIONER_DELETE_RETENTION (168h: a deleted deployment is suspended, restorable, this\n"
    "  long before its namespace and data are purged),\n"
    "  PROVISIONER_DEFAULT_PLAN (standard), PROVISIONER_LICENSE_VALIDITY (8760h),\n"
    "  PROVISIONER_TRUSTED_PROXIES (CIDRs whose X-Forwarded-For the signup rate limit and the\n"
    "  login throttle believe), PROVISIONER_ACCESS_TOKEN_TTL (15m), PROVISIONER_DATABASE_TIMEOUT\n"
    "  (15s: each store call; a database that stops answering gets a 503, not a hung request).\n"
    "Optional, slow API clients are answered 408 and closed: PROVISIONER_HEADER_TIMEOUT (10s, the\n"
    "  request line and headers), PROVISIONER_BODY_TIMEOUT (10s after the headers, the body),\n"
    "  PROVISIONER_BODY_MIN_RATE (1024 bytes a second on average after the body's first second;\n"
    "  0: none).\n"
    "Optional, e-mail to customers (public signup with verified addresses, password reset\n"
    "  links; without it only the admin token signs customers up): PROVISIONER_SMTP_URL\n"
    "  (smtp://host:port or smtps://host:port, user:password@ to log in), PROVISIONER_MAIL_FROM\n"
    "  (the sender address), PROVISIONER_PUBLIC_URL (where customers open links, https://...),\n"
    "  both required with it; PROVISIONER_PASSWORD_RESET_TTL (1h),\n"
    "  PROVISIONER_SIGNUP_VERIFICATION_TTL (24h), PROVISIONER_MAX_UNVERIFIED_SIGNUPS (1000,\n"
    "  every client together; over it public signups get 503).\n";

namespace {

Error Bad(const std::string& message) { return Error{message}; }

std::optional<std::int64_t> ParseCount(const std::string& text, std::int64_t min,
                                       std::int64_t max) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

bool HasUriParameter(const std::string& uri, const std::string& key) {
  const auto query = uri.find('?');
  if (query == std::string::npos) return false;
  for (std::size_t start = query + 1; start <= uri.size();) {
    const auto end = std::min(uri.find('&', start), uri.size());
    if (uri.compare(start, key.size() + 1, key + "=") == 0) return true;
    start = end + 1;
  }
  return false;
}

bool HasKeywordSetting(const std::string& conninfo, const std::string& key) {
  for (auto at = conninfo.find(key); at != std::string::npos; at = conninfo.find(key, at + 1)) {
    const bool starts_word = at == 0 || std::isspace(static_cast<unsigned char>(conninfo[at - 1]));
    auto after = at + key.size();
    while (after < conninfo.size() && std::isspace(static_cast<unsigned char>(conninfo[after]))) {
      ++after;
    }
    if (starts_word && after < conninfo.size() && conninfo[after] == '=') return true;
  }
  return false;
}

// HOST:PORT as CivetWeb's listening_ports takes it (the host may be a bracketed IPv6 address).
bool IsHostPort(const std::string& value) {
  const auto colon = value.rfind(':');
  return colon != std::string::npos && colon != 0 && ParseCount(value.substr(colon + 1), 0, 65535);
}

}  // namespace

std::string WithConnectionDeadlines(std::string database_url, double timeout_seconds) {
  const auto connect_seconds = std::max<long>(2, std::lround(std::ceil(timeout_seconds)));
  const std::pair<std::string, std::string> deadlines[] = {
      {"connect_timeout", std::to_string(connect_seconds)},
      {"keepalives", "1"},
      {"keepalives_idle", "30"},
      {"keepalives_interval", "10"},
      {"keepalives_count", "3"},
      {"tcp_user_timeout", "30000"}};
  const bool uri =
      database_url.starts_with("postgresql://") || database_url.starts_with("postgres://");
  for (const auto& [key, value] : deadlines) {
    if (uri) {
      if (HasUriParameter(database_url, key)) continue;
      const auto query = database_url.find('?');
      if (query == std::string::npos) {
        database_url += '?';
      } else if (database_url.back() != '?' && database_url.back() != '&') {
        database_url += '&';
      }
      database_url += key + "=" + value;
    } else if (!HasKeywordSetting(database_url, key)) {
      database_url += " " + key + "=" + value;
    }
  }
  return database_url;
}

Result<EncryptionConfig> ParseEncryptionConfig(
    const std::function<const char*(const char*)>& getenv, bool allow_clear_opt_out) {
  auto get = [&](const char* name) {
    const char* value = getenv(name);
    return value ? std::string(value) : std::string();
  };
  EncryptionConfig config;
  config.key_file = get("PROVISIONER_ENCRYPTION_KEY_FILE");
  const auto previous = get("PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES");
  for (std::size_t start = 0; !previous.empty() && start <= previous.size();) {
    const auto end = std::min(previous.find(',', start), previous.size());
    auto item = previous.substr(start, end - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (item.empty()) {
      return Bad(
          "PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES: an empty entry; give key file paths "
          "separated by commas");
    }
    config.previous_files.push_back(std::move(item));
    start = end + 1;
  }
  const auto allow = get("PROVISIONER_ALLOW_UNENCRYPTED_SECRETS");
  if (!allow.empty() && allow != "true" && allow != "false") {
    return Bad("PROVISIONER_ALLOW_UNENCRYPTED_SECRETS: '" + allow + "' is not true or false");
  }
  config.allow_clear = allow_clear_opt_out && allow == "true";
  if (config.key_file.empty()) {
    if (!config.previous_files.empty()) {
      return Bad(
          "PROVISIONER_ENCRYPTION_KEY_FILE: required with "
          "PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES (previous keys only open values; the "
          "current key seals)");
    }
    if (!config.allow_clear) {
      return Bad(std::string(
                     "PROVISIONER_ENCRYPTION_KEY_FILE: required; the path of a file with 32 random "
                     "bytes (openssl rand -hex 32 > key) that seals the tenants' database "
                     "passwords and license keys in the store") +
                 (allow_clear_opt_out ? " (or PROVISIONER_ALLOW_UNENCRYPTED_SECRETS=true to store "
                                        "them in clear, for development only)"
                                      : ""));
    }
  }
  return config;
}

namespace {

// The environment as ParseServeConfig reads it. Malformed durations and counts do not stop the
// reading at once: the first one is kept and reported after every other check (as before).
class EnvReader {
 public:
  explicit EnvReader(const std::function<const char*(const char*)>& getenv) : getenv_(getenv) {}

  std::string Get(const char* name) const {
    const char* value = getenv_(name);
    return value ? std::string(value) : std::string();
  }

  double Seconds(const char* name, double fallback) {
    const auto text = Get(name);
    if (text.empty()) return fallback;
    const auto parsed = billing::common::ParseDuration(text);
    if (!parsed || parsed->count() <= 0) {
      Defer(std::string(name) + ": '" + text + "' is not a positive duration like 30s or 5m");
      return fallback;
    }
    return static_cast<double>(parsed->count()) / 1000.0;
  }

  // Durations stored as whole seconds: a fraction would be cut off silently.
  double WholeSeconds(const char* name, double fallback) {
    const double value = Seconds(name, fallback);
    if (std::fmod(value, 1.0) != 0)
      Defer(std::string(name) + ": a whole number of seconds, like 90s or 2m");
    return value;
  }

  std::int64_t Count(const char* name, std::int64_t fallback, std::int64_t min, std::int64_t max) {
    const auto text = Get(name);
    if (text.empty()) return fallback;
    const auto parsed = ParseCount(text, min, max);
    if (!parsed) {
      Defer(std::string(name) + ": '" + text + "' is not a whole number from " +
            std::to_string(min) + " to " + std::to_string(max));
      return fallback;
    }
    return *parsed;
  }

  void Defer(std::string message) {
    if (!deferred_) deferred_ = Bad(message);
  }
  const std::optional<Error>& deferred() const { return deferred_; }

 private:
  const std::function<const char*(const char*)>& getenv_;
  std::optional<Error> deferred_;
};

Status ParseServeFlags(const std::vector<std::string>& args, ServeConfig& config) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto [arg, inline_value] = billing::common::SplitFlag(args[i]);
    if (arg != "--listen" && arg != "--health-listen" && arg != "--workers") {
      return Bad("unknown argument \"" + args[i] + "\"\n" + kServeUsage);
    }
    if (!inline_value && i + 1 >= args.size()) {
      return Bad(arg + " needs a value\n" + kServeUsage);
    }
    const std::string value = inline_value ? *inline_value : args[++i];
    if (arg == "--listen") {
      if (!IsHostPort(value)) {
        return Bad("--listen: '" + value + "' is not HOST:PORT like 0.0.0.0:3000");
      }
      config.api.listen = value;
    } else if (arg == "--health-listen") {
      if (!IsHostPort(value)) {
        return Bad("--health-listen: '" + value + "' is not HOST:PORT like 0.0.0.0:3001");
      }
      config.health.listen = value;
    } else {
      const auto workers = ParseCount(value, 1, 64);
      if (!workers) return Bad("--workers: '" + value + "' is not a number from 1 to 64");
      config.reconciler.workers = static_cast<std::size_t>(*workers);
    }
  }
  // Port 0 picks a free port for each, so only a fixed port can clash.
  if (config.api.listen == config.health.listen && !config.api.listen.ends_with(":0")) {
    return Bad("--health-listen: '" + config.health.listen +
               "' is the API's --listen too; give the health listener a port of its own, like "
               "0.0.0.0:3001");
  }
  return Ok();
}

Status ReadRequiredSettings(const EnvReader& env, ServeConfig& config) {
  std::string first_error;
  auto required = [&](const char* name, const char* what) {
    auto value = env.Get(name);
    if (value.empty() && first_error.empty())
      first_error = std::string(name) + ": required; " + what;
    return value;
  };
  config.api.admin_token = required(
      "PROVISIONER_ADMIN_TOKEN", "the bearer token for every endpoint but signup (from a Secret)");
  config.database_url =
      required("DATABASE_URL", "the provisioner's PostgreSQL, postgresql://user:pass@host/db");
  config.signing_key_file = required(
      "LICENSE_SIGNING_KEY_FILE", "the path of the PEM private key (Ed25519 or RSA) for licenses");
  config.api.domain_base =
      required("PROVISIONER_DOMAIN_BASE", "the customers' base domain, like iotistic.example.com");
  config.token_key_file = required(
      "PROVISIONER_TOKEN_KEY_FILE",
      "the path of a file with at least 32 random bytes (openssl rand -hex 32 > key) that signs "
      "the customers' access tokens");
  if (!first_error.empty()) return Bad(first_error);
  if (config.api.admin_token.find_first_of(" \t\r\n") != std::string::npos) {
    return Bad(
        "PROVISIONER_ADMIN_TOKEN: contains whitespace (a trailing newline from the file "
        "the Secret was made from?)");
  }
  if (config.api.admin_token.size() < 16) {
    return Bad("PROVISIONER_ADMIN_TOKEN: at least 16 characters (use a random token)");
  }
  return Ok();
}

Status ReadTrustedProxies(const std::string& proxies, ApiOptions& api) {
  std::size_t start = 0;
  while (!proxies.empty() && start <= proxies.size()) {
    const auto end = std::min(proxies.find(',', start), proxies.size());
    auto item = proxies.substr(start, end - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    const auto network = ParseNetwork(item);
    if (!network) {
      return Bad("PROVISIONER_TRUSTED_PROXIES: '" + item +
                 "' is not an address or CIDR like 10.0.0.0/8 or fd00::/8");
    }
    api.trusted_proxies.push_back(*network);
    start = end + 1;
  }
  return Ok();
}

void ReadTimingAndLimits(EnvReader& env, ServeConfig& config) {
  auto& timing = config.reconciler.timing;
  timing.poll_seconds = env.Seconds("PROVISIONER_POLL_INTERVAL", timing.poll_seconds);
  timing.resync_seconds = env.Seconds("PROVISIONER_RESYNC_INTERVAL", timing.resync_seconds);
  timing.reapply_seconds = env.Seconds("PROVISIONER_REAPPLY_INTERVAL", timing.reapply_seconds);
  timing.failure_backoff_seconds =
      env.Seconds("PROVISIONER_FAILURE_BACKOFF", timing.failure_backoff_seconds);
  timing.failure_backoff_max_seconds =
      env.Seconds("PROVISIONER_FAILURE_BACKOFF_MAX", timing.failure_backoff_max_seconds);
  timing.step_timeout_seconds =
      env.Seconds("PROVISIONER_STEP_TIMEOUT", timing.step_timeout_seconds);
  if (timing.failure_backoff_seconds > timing.failure_backoff_max_seconds) {
    env.Defer("PROVISIONER_FAILURE_BACKOFF: longer than PROVISIONER_FAILURE_BACKOFF_MAX");
  }
  config.reconciler.dispatch_interval_seconds = std::min(1.0, timing.poll_seconds);
  config.api.license_validity_seconds = static_cast<std::int64_t>(env.WholeSeconds(
      "PROVISIONER_LICENSE_VALIDITY", static_cast<double>(config.api.license_validity_seconds)));
  config.reconciler.kube_retry.max_attempts =
      static_cast<int>(env.Count("PROVISIONER_KUBE_MAX_ATTEMPTS", 5, 1, 20));
  config.api.access_token_ttl_seconds = static_cast<std::int64_t>(env.WholeSeconds(
      "PROVISIONER_ACCESS_TOKEN_TTL", static_cast<double>(config.api.access_token_ttl_seconds)));
  config.database_timeout_seconds =
      env.Seconds("PROVISIONER_DATABASE_TIMEOUT", config.database_timeout_seconds);
  config.api.signup_per_minute =
      static_cast<double>(env.Count("PROVISIONER_SIGNUP_RATE_PER_MINUTE", 10, 1, 100000));
  config.api.signup_burst =
      static_cast<double>(env.Count("PROVISIONER_SIGNUP_BURST", 20, 1, 100000));
  config.api.deployments_per_hour =
      static_cast<double>(env.Count("PROVISIONER_DEPLOYMENTS_PER_HOUR", 120, 1, 1000000));
  config.api.delete_retention_seconds = static_cast<std::int64_t>(env.WholeSeconds(
      "PROVISIONER_DELETE_RETENTION", static_cast<double>(config.api.delete_retention_seconds)));
}

// How long the API waits for a request: slow clients are closed, not waited for.
void ReadRequestLimits(EnvReader& env, ApiOptions& api) {
  api.header_timeout_seconds =
      env.Seconds("PROVISIONER_HEADER_TIMEOUT", api.header_timeout_seconds);
  if (api.header_timeout_seconds < 1) {
    env.Defer("PROVISIONER_HEADER_TIMEOUT: at least 1s (clients on slow links need a moment)");
  }
  api.body.timeout_seconds = env.Seconds("PROVISIONER_BODY_TIMEOUT", api.body.timeout_seconds);
  api.body.min_bytes_per_second = static_cast<double>(
      env.Count("PROVISIONER_BODY_MIN_RATE",
                static_cast<std::int64_t>(api.body.min_bytes_per_second), 0, 1000000000));
}

Status ReadUsageSchedule(EnvReader& env, ServeConfig& config) {
  const auto prometheus = env.Get("PROMETHEUS_URL");
  if (prometheus.empty()) return Ok();
  if (!prometheus.starts_with("http://") && !prometheus.starts_with("https://")) {
    return Bad("PROMETHEUS_URL: '" + prometheus + "' is not an http(s) URL");
  }
  UsageScheduleOptions usage;
  usage.prometheus_url = prometheus;
  const double period = env.Seconds("PROVISIONER_USAGE_PERIOD", 3600);
  if (std::fmod(period, 1.0) != 0) {
    return Bad("PROVISIONER_USAGE_PERIOD: a whole number of seconds, like 1h");
  }
  usage.period_seconds = static_cast<std::int64_t>(period);
  usage.lookback_seconds =
      static_cast<std::int64_t>(env.WholeSeconds("PROVISIONER_USAGE_LOOKBACK", 6 * 3600.0));
  usage.settle_seconds =
      static_cast<std::int64_t>(env.WholeSeconds("PROVISIONER_USAGE_SETTLE", 120));
  usage.interval_seconds = env.Seconds("PROVISIONER_USAGE_INTERVAL", 300);
  usage.max_gap_seconds = env.Seconds("PROVISIONER_USAGE_MAX_GAP", 300);
  usage.retention_seconds =
      static_cast<std::int64_t>(env.WholeSeconds("PROVISIONER_USAGE_RETENTION", 15 * 24 * 3600.0));
  usage.batch_size = static_cast<std::size_t>(env.Count("PROVISIONER_USAGE_BATCH", 200, 1, 100000));
  usage.query_periods = env.Count("PROVISIONER_USAGE_QUERY_PERIODS", 24, 1, 10000);
  usage.final_after_seconds =
      static_cast<std::int64_t>(env.WholeSeconds("PROVISIONER_USAGE_FINAL_AFTER", 72 * 3600.0));
  config.usage = usage;
  return Ok();
}

// A bare address: what SMTP's MAIL FROM and the From header both take.
bool IsPlainAddress(const std::string& address) {
  const auto at = address.find('@');
  return at != std::string::npos && at > 0 && at + 1 < address.size() &&
         address.find('@', at + 1) == std::string::npos &&
         address.find_first_of(" \t\r\n<>,;\"") == std::string::npos;
}

Status ReadMailSettings(EnvReader& env, ServeConfig& config) {
  const auto smtp_url = env.Get("PROVISIONER_SMTP_URL");
  config.api.password_reset_ttl_seconds = static_cast<std::int64_t>(
      env.WholeSeconds("PROVISIONER_PASSWORD_RESET_TTL",
                       static_cast<double>(config.api.password_reset_ttl_seconds)));
  config.api.signup_verification_ttl_seconds = static_cast<std::int64_t>(
      env.WholeSeconds("PROVISIONER_SIGNUP_VERIFICATION_TTL",
                       static_cast<double>(config.api.signup_verification_ttl_seconds)));
  config.api.max_unverified_signups = env.Count("PROVISIONER_MAX_UNVERIFIED_SIGNUPS",
                                                config.api.max_unverified_signups, 1, 10000000);
  if (smtp_url.empty()) return Ok();
  if (!IsSmtpUrl(smtp_url)) {
    return Bad("PROVISIONER_SMTP_URL: not an smtp://host:port or smtps://host:port URL");
  }
  MailerOptions mail;
  mail.smtp_url = smtp_url;
  mail.from = env.Get("PROVISIONER_MAIL_FROM");
  if (!IsPlainAddress(mail.from)) {
    return Bad(
        "PROVISIONER_MAIL_FROM: required with PROVISIONER_SMTP_URL, a bare address like "
        "billing@example.com ('" +
        mail.from + "' is not one)");
  }
  auto public_url = env.Get("PROVISIONER_PUBLIC_URL");
  while (public_url.ends_with('/')) public_url.pop_back();
  if ((!public_url.starts_with("https://") && !public_url.starts_with("http://")) ||
      public_url.find_first_of(" \t\r\n?#") != std::string::npos) {
    return Bad(
        "PROVISIONER_PUBLIC_URL: required with PROVISIONER_SMTP_URL, the http(s) address "
        "customers open the links of e-mails at, like https://signup.example.com");
  }
  config.api.public_url = public_url;
  config.mail = std::move(mail);
  return Ok();
}

}  // namespace

Result<ServeConfig> ParseServeConfig(const std::vector<std::string>& args,
                                     const std::function<const char*(const char*)>& getenv,
                                     const std::string& default_chart_dir) {
  ServeConfig config;
  if (auto status = ParseServeFlags(args, config); !status.ok()) return status.failure();
  EnvReader env(getenv);
  if (auto status = ReadRequiredSettings(env, config); !status.ok()) return status.failure();
  config.chart_dir = env.Get("PROVISIONER_CHART_DIR");
  if (config.chart_dir.empty()) config.chart_dir = default_chart_dir;
  config.values_file = env.Get("PROVISIONER_VALUES_FILE");
  if (auto status = ReadTrustedProxies(env.Get("PROVISIONER_TRUSTED_PROXIES"), config.api);
      !status.ok()) {
    return status.failure();
  }
  if (auto plan = env.Get("PROVISIONER_DEFAULT_PLAN"); !plan.empty())
    config.api.default_plan = plan;
  ReadTimingAndLimits(env, config);
  ReadRequestLimits(env, config.api);
  if (auto status = ReadUsageSchedule(env, config); !status.ok()) return status.failure();
  if (auto status = ReadMailSettings(env, config); !status.ok()) return status.failure();
  if (env.deferred()) return *env.deferred();
  config.database_url =
      WithConnectionDeadlines(std::move(config.database_url), config.database_timeout_seconds);
  auto encryption = ParseEncryptionConfig(getenv, true);
  if (!encryption.ok()) return Error{encryption.error()};
  config.encryption = std::move(encryption).value();
  return config;
}

}  // namespace billing::provisioner
