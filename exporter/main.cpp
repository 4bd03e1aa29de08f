// billing-exporter: samples the customer's PostgreSQL and MQTT broker on their own schedules and
// serves the latest sample as Prometheus metrics. See README.md for
// configuration and the metric reference.

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "billing/common/command_line.h"
#include "billing/common/file.h"
#include "billing/common/log.h"
#include "billing/common/malloc_tuning.h"
#include "billing/common/signals.h"
#include "billing/common/version.h"
#include "src/config.h"
#include "src/exposition.h"
#include "src/http_server.h"
#include "src/mqtt_collector.h"
#include "src/postgres_collector.h"
#include "src/sampler.h"
#include "src/web_config.h"

namespace {

using namespace billing::exporter;
using billing::common::Log;
using billing::common::LogLevel;

constexpr int kExitUsage = 2;

// Every flag takes its value as `--flag value` or `--flag=value`; every environment variable the
// exporter reads is listed (README "Environment"; tests/exporter/cli_test checks the list).
constexpr const char* kUsage =
    "usage: billing-exporter [--config FILE] [--listen ADDR:PORT] [--web.config.file FILE]\n"
    "                        [--check-config] [--version]\n"
    "Environment (overrides the file; at least one of DATABASE_URL and MQTT_URL):\n"
    "  DATABASE_URL                   postgres.url: libpq URI or key=value string\n"
    "  MQTT_URL                       mqtt.url: tcp://host:1883 or ssl://host:8883\n"
    "  MQTT_USERNAME, MQTT_PASSWORD   mqtt.username, mqtt.password\n"
    "  MQTT_CA_FILE                   mqtt.ca_file: PEM CA bundle for ssl://\n"
    "  MQTT_CLIENT_ID                 mqtt.client_id\n"
    "  MQTT_SOURCE                    mqtt.source: subscription (default) or plugin\n"
    "  CUSTOMER_ID                    customer_id: the customer_id label on every series\n"
    "  SAMPLE_INTERVAL                sample_interval: 500ms, 15s, 1m, ... (default 15s)\n"
    "  EXPORTER_BASIC_AUTH_USERNAME, EXPORTER_BASIC_AUTH_PASSWORD\n"
    "                                 web.basic_auth: basic auth on /metrics\n"
    "  WEB_CONFIG_FILE                web.config_file: TLS and bcrypt users (--web.config.file)\n"
    "Every key of --config FILE: exporter/config.example.yaml, docs/exporter-configuration.md.\n";

struct Args {
  std::optional<std::string> config_path;
  std::optional<std::string> listen;
  std::optional<std::string> web_config_file;
  bool check_config = false;
  bool version = false;
  bool help = false;
};

// Fills `args`; the error names the argument at fault.
Result<Args> ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto split = billing::common::SplitFlag(arg);
    const std::string& flag = split.first;
    const std::optional<std::string>& inline_value = split.second;
    // The flag's value, inline or the next argument; `what` says what it must be.
    auto value = [&](const char* what) -> Result<std::string> {
      if (inline_value) return *inline_value;
      if (i + 1 < argc) return std::string(argv[++i]);
      return Error{flag + " needs " + what};
    };
    if (arg == "--check-config") {
      args.check_config = true;
    } else if (arg == "--version") {
      args.version = true;
    } else if (arg == "--help" || arg == "-h") {
      args.help = true;
    } else if (flag == "--web.config.file" || flag == "--config") {
      auto path = value("a file path");
      if (!path.ok()) return path.failure();
      (flag == "--config" ? args.config_path : args.web_config_file) = std::move(path).value();
    } else if (flag == "--listen") {
      auto listen = value("ADDR:PORT");
      if (!listen.ok()) return listen.failure();
      if (auto valid = ValidateListenAddress(listen.value()); !valid.ok())
        return Error{"--listen: " + valid.error()};
      args.listen = std::move(listen).value();
    } else {
      return Error{"unknown argument '" + arg + "'"};
    }
  }
  return args;
}

// The web configuration file, read and validated (nullopt: none); the error names the file and
// the field.
Result<std::optional<WebConfig>> LoadWebConfig(const ExporterConfig& config) {
  if (config.web_config_file.empty()) return std::optional<WebConfig>();
  const auto& path = config.web_config_file;
  const auto text = billing::common::ReadTextFile(path);
  if (!text)
    return Error{"web config file " + path + ": cannot be read (missing, or a directory?)"};
  auto parsed = ParseWebConfig(*text);
  if (!parsed.ok()) return Error{"web config file " + path + ": " + parsed.error()};
  if (!parsed.value().basic_auth_users.empty() && !config.basic_auth_username.empty()) {
    return Error{"web config file " + path +
                 ": basic_auth_users and web.basic_auth (EXPORTER_BASIC_AUTH_*) are both set; "
                 "keep one"};
  }
  return std::optional<WebConfig>(std::move(parsed).value());
}

}  // namespace

int main(int argc, char** argv) {
  // Its pages of several MB are rebuilt every sample and handed out by up to 16 HTTP threads.
  billing::common::TuneMalloc();
  auto parsed_args = ParseArgs(argc, argv);
  if (!parsed_args.ok()) {
    std::cerr << "billing-exporter: " << parsed_args.error() << "\n" << kUsage;
    return kExitUsage;
  }
  const Args args = std::move(parsed_args).value();
  if (args.help) {
    std::cout << kUsage;
    return 0;
  }
  if (args.version) {
    std::cout << "billing-exporter " << billing::common::Version() << " (revision "
              << billing::common::Revision() << ")\n";
    return 0;
  }

  auto loaded = LoadConfig(args.config_path, ProcessEnvironment());
  if (!loaded.ok()) {
    std::cerr << "billing-exporter: config error: " << loaded.error() << "\n";
    return kExitUsage;
  }
  ExporterConfig config = std::move(loaded).value();
  if (args.listen) config.listen = *args.listen;
  if (args.web_config_file) config.web_config_file = *args.web_config_file;
  auto loaded_web = LoadWebConfig(config);
  if (!loaded_web.ok()) {
    std::cerr << "billing-exporter: config error: " << loaded_web.error() << "\n";
    return kExitUsage;
  }
  const std::optional<WebConfig> web = std::move(loaded_web).value();
  if (args.check_config) {
    std::cout << "config ok\n";
    return 0;
  }

  // Before any thread starts: only this thread takes SIGTERM/SIGINT.
  const billing::common::StopSignals stop_signals;

  Exposition exposition(config.constant_labels, billing::common::Version(),
                        billing::common::Revision());
  std::vector<std::unique_ptr<Collector>> collectors;
  if (config.postgres.url) {
    collectors.push_back(
        std::make_unique<PostgresCatalogCollector>(config.postgres, config.sample_interval));
    if (!config.postgres.exact_count_tables.empty()) {
      collectors.push_back(std::make_unique<PostgresExactCountCollector>(config.postgres));
    }
  }
  if (!config.mqtt.url.empty()) {
    collectors.push_back(std::make_unique<MqttCollector>(config.mqtt, config.sample_interval));
  }
  for (const auto& collector : collectors) {
    exposition.Register(collector->Name(), collector->Interval());
  }

  std::unique_ptr<HttpServer> server;
  try {
    server = std::make_unique<HttpServer>(
        HttpOptions{config.listen, config.basic_auth_username, config.basic_auth_password, web},
        exposition);
  } catch (const std::exception& e) {
    Log(LogLevel::kError, "http", e.what());
    return 1;
  }
  Log(LogLevel::kInfo, "http",
      "listening on " + config.listen.substr(0, config.listen.rfind(':')) + ":" +
          std::to_string(server->port()));

  {
    std::vector<std::unique_ptr<Sampler>> samplers;
    for (const auto& collector : collectors) {
      samplers.push_back(std::make_unique<Sampler>(*collector, exposition));
    }
    Log(LogLevel::kInfo, "main",
        "sampling every " + std::to_string(config.sample_interval.count()) + "ms: postgres " +
            (config.postgres.url ? config.postgres.url->Redacted() : std::string("off")) +
            ", mqtt " + (config.mqtt.url.empty() ? std::string("off") : config.mqtt.url));
    const std::string received = stop_signals.Wait();
    Log(LogLevel::kInfo, "main", "received " + received + ", shutting down");
    server.reset();  // stop serving first, then stop the samplers (each
                     // finishes its sample)
  }
  Log(LogLevel::kInfo, "main", "stopped");
  return 0;
}
