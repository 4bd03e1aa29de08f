#include "serve.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "access_token.h"
#include "api.h"
#include "billing/common/file.h"
#include "billing/common/log.h"
#include "billing/common/signals.h"
#include "deployer.h"
#include "encryption_keys.h"
#include "generated_values.h"
#include "generated_values_backfill.h"
#include "health_server.h"
#include "identity.h"
#include "mailer.h"
#include "reconciler.h"
#include "serve_config.h"
#include "service_metrics.h"
#include "store.h"
#include "usage_scheduler.h"

namespace billing::provisioner {
namespace {

using billing::common::Log;
using billing::common::LogLevel;

constexpr int kExitBadConfig = 2;
constexpr int kExitUnavailable = 1;

int Fail(int status, const std::string& message) {
  Log(LogLevel::kError, "serve", message);
  return status;
}

}  // namespace

int Serve(const std::vector<std::string>& args, const std::string& default_chart_dir) {
  for (const auto& arg : args) {
    if (arg == "-h" || arg == "--help") {
      std::cout << kServeUsage;
      return 0;
    }
  }
  auto parsed = ParseServeConfig(args, ::getenv, default_chart_dir);
  if (!parsed.ok()) return Fail(kExitBadConfig, parsed.error());
  const ServeConfig& config = parsed.value();

  auto signer = LicenseSigner::FromPemFile(config.signing_key_file);
  if (!signer.ok()) return Fail(kExitBadConfig, "LICENSE_SIGNING_KEY_FILE: " + signer.error());
  ApiOptions api_options = config.api;
  if (auto key = common::ReadTextFile(config.token_key_file); !key) {
    return Fail(kExitBadConfig, "PROVISIONER_TOKEN_KEY_FILE: cannot read " + config.token_key_file);
  } else if (key->size() < kMinAccessTokenKeyBytes) {
    return Fail(kExitBadConfig, "PROVISIONER_TOKEN_KEY_FILE: " + config.token_key_file +
                                    " holds fewer than " + std::to_string(kMinAccessTokenKeyBytes) +
                                    " bytes; write a random key (openssl rand -hex 32 > key)");
  } else {
    api_options.token_key = std::move(*key);
  }
  auto secret_box = LoadSecretBox(config.encryption);
  if (!secret_box.ok()) return Fail(kExitBadConfig, secret_box.error());
  const auto chart_values = common::ReadTextFile(config.chart_dir + "/values.yaml");
  const auto chart_yaml = common::ReadTextFile(config.chart_dir + "/Chart.yaml");
  if (!chart_values || !chart_yaml) {
    return Fail(
        kExitUnavailable,
        "PROVISIONER_CHART_DIR: cannot read values.yaml and Chart.yaml in " + config.chart_dir);
  }
  std::string platform_values;
  if (!config.values_file.empty()) {
    auto text = common::ReadTextFile(config.values_file);
    if (!text)
      return Fail(kExitBadConfig, "PROVISIONER_VALUES_FILE: cannot read " + config.values_file);
    platform_values = std::move(*text);
  }
  const StackRenderer renderer(
      *chart_values, *chart_yaml, platform_values,
      common::ReadTextFile(config.chart_dir + "/values.schema.json").value_or(""));
  // A customer that the platform's values could never deploy is a configuration error: say so
  // now rather than at the first signup.
  nlohmann::ordered_json probe_values = {
      {"customer", {{"id", "probe"}, {"email", "probe@example.com"}, {"companyName", "Probe"}}},
      {"license", {{"key", "probe"}}},
      {"domain", {{"base", config.api.domain_base}}}};
  probe_values.merge_patch(MissingGeneratedValues(probe_values));  // what a signup generates
  if (auto probe = renderer.Render(probe_values); !probe.ok()) {
    return Fail(kExitBadConfig,
                "the chart with PROVISIONER_VALUES_FILE and PROVISIONER_DOMAIN_BASE "
                "cannot render a customer: " +
                    probe.error());
  }
  auto credentials = LoadKubeCredentials();
  if (!credentials.ok())
    return Fail(kExitBadConfig, "Kubernetes credentials: " + credentials.error());

  // Signals are taken by Wait below, never by a worker thread: blocked before any starts.
  const common::StopSignals stop_signals;

  // libpq reads these when DATABASE_URL does not say: a partitioned or hung database must fail
  // a request in bounded time, not hold an API thread or a worker for the TCP timeout.
  setenv("PGCONNECT_TIMEOUT", "10", 0);
  setenv("PGOPTIONS", "-c statement_timeout=30000", 0);

  ServiceMetrics metrics;
  std::optional<Store> store;
  try {
    store.emplace(config.database_url, config.api.threads + 2, secret_box.value(),
                  std::chrono::milliseconds(std::llround(config.database_timeout_seconds * 1000)));
    if (auto checked = CheckStoredSecrets(*store, secret_box.value().get()); !checked.ok()) {
      return Fail(kExitBadConfig, checked.failure().message);
    }
    if (const auto backfill = BackfillGeneratedValues(*store); backfill.skipped > 0) {
      Log(LogLevel::kWarn, "serve",
          std::to_string(backfill.skipped) +
              " customers lack generated chart values that could not be added now (unreadable "
              "secrets or a concurrent change); the next start retries");
    }
  } catch (const std::exception& e) {
    return Fail(kExitUnavailable, std::string("DATABASE_URL: cannot open the store: ") + e.what());
  }
  metrics.SetPhaseSource([&] { return store->CountByPhase(); });
  Reconciler reconciler(*store, config.database_url, renderer, credentials.value(),
                        config.reconciler, metrics);
  std::optional<UsageScheduler> usage;
  if (config.usage) usage.emplace(*config.usage, config.database_url, *store, metrics);
  std::optional<SmtpMailer> mailer;  // before the API: it must outlive the API's calls
  std::function<void(OutgoingMail)> send_mail;
  if (config.mail) {
    mailer.emplace(*config.mail, metrics);
    send_mail = [&](OutgoingMail mail) { mailer->Enqueue(std::move(mail)); };
  }
  std::optional<ApiServer> api;
  try {
    api.emplace(api_options, ApiDependencies{*store, renderer, *signer.value(), metrics,
                                             [&] { reconciler.Wake(); }, send_mail});
  } catch (const std::exception& e) {
    return Fail(kExitBadConfig, "--listen: " + std::string(e.what()));
  }
  // After the API: a probe that gets its answer finds the API listening.
  std::optional<HealthServer> health;
  try {
    health.emplace(config.health, metrics);
  } catch (const std::exception& e) {
    return Fail(kExitBadConfig, "--health-listen: " + std::string(e.what()));
  }
  Log(LogLevel::kInfo, "serve",
      "listening on " + config.api.listen + " (port " + std::to_string(api->port()) +
          "), /healthz and /metrics on " + config.health.listen + " (port " +
          std::to_string(health->port()) + "), " + std::to_string(config.reconciler.workers) +
          " workers, license keys signed with " + signer.value()->algorithm() +
          (config.usage ? ", usage job on" : ", usage job off") +
          (config.mail ? ", e-mail via the SMTP relay" : ", no e-mail"));
  const std::string received = stop_signals.Wait();
  Log(LogLevel::kInfo, "serve", "received " + received + ", shutting down");
  api.reset();  // stop taking requests first, then finish the steps in flight
  health.reset();
  return 0;
}

}  // namespace billing::provisioner
