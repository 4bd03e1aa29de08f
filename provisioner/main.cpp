// provisioner: the customer-instance deployment tool.
//   render  prints the customer's Kubernetes objects (the chart's values.yaml as defaults, then -f
//           files, then --set arguments) as a YAML stream in apply order.
//   usage   computes billable usage per customer and period from Prometheus' raw samples, prints
//           it as CSV or JSON and optionally upserts it into usage_records.
//   serve   the signup/deployment/usage service (src/serve.h).
//   rotate-encryption-key  seals every tenant secret in the store under the current key
//           (src/encryption_keys.h).
//
// Exit status: 0 done; 2 bad input (an invalid value, a malformed --set, an unreadable -f file, a
// bad time range, bad usage), with one line on stderr naming it; 1 a dependency failed (the chart
// cannot be read, Prometheus or the store cannot be reached).

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "billing/common/command_line.h"
#include "billing/common/customer_id.h"
#include "billing/common/duration.h"
#include "billing/common/file.h"
#include "billing/common/malloc_tuning.h"
#include "billing/common/version.h"
#include "billing/provisioner/render.h"
#include "billing/provisioner/usage.h"
#include "encryption_keys.h"
#include "identity.h"
#include "serve.h"
#include "usage_job.h"
#include "usage_store.h"

namespace {

namespace fs = std::filesystem;
using billing::provisioner::RenderRequest;

constexpr int kExitInvalidInput = 2;
constexpr int kExitChartUnreadable = 1;

constexpr char kUsageUsage[] =
    "usage: provisioner usage --prometheus URL --from TIME --to TIME [--period DURATION]\n"
    "         [--customer ID] [--format csv|json] [--store DATABASE_URL] [--max-gap DURATION]\n"
    "  TIME is RFC 3339 (2026-11-25T10:00:00Z) or Unix seconds, on period boundaries.\n"
    "  --period     billing period (default 1h); --max-gap: samples further apart than this make "
    "a\n"
    "               period incomplete (default 5m).\n"
    "  --store      upsert the records into usage_records in this PostgreSQL database.\n";

// What a bare `provisioner` (or --help) prints first: every subcommand.
constexpr char kCommands[] =
    "usage: provisioner COMMAND [ARGS]\n"
    "commands:\n"
    "  render  print the customer's Kubernetes objects from the chart's values (below)\n"
    "  serve   the signup, deployment, status and usage service (provisioner serve --help)\n"
    "  rotate-encryption-key  seal every tenant secret in the store under the current key\n"
    "          (provisioner rotate-encryption-key --help)\n"
    "  usage   billable usage per customer and period from Prometheus (below)\n\n";

constexpr char kUsage[] =
    "usage: provisioner --version\n"
    "       provisioner render [--chart DIR] [--managed-by NAME] [-f values.yaml]... "
    "[--set key=value]...\n"
    "  --chart DIR        the customer-instance chart (default: $PROVISIONER_CHART_DIR, else "
    "the source tree's manifests/charts/customer-instance)\n"
    "  --managed-by NAME  the app.kubernetes.io/managed-by label (default billing-provisioner)\n"
    "  -f, --values FILE  a values file over the chart's values.yaml (repeatable, later wins)\n"
    "  --set key=value    a value over the files, Helm syntax: a.b=c, a=1,b=2, a\\.b=c "
    "(repeatable)\n"
    "  Without postgres.password a random one is generated, and without mosquitto.auth.*.password\n"
    "  and passwordHash a random broker password and its hash (the output then differs between\n"
    "  runs in these values only).\n";

fs::path DefaultChartDir() {
  if (const char* from_env = std::getenv("PROVISIONER_CHART_DIR"); from_env && *from_env) {
    return from_env;
  }
  return BILLING_DEFAULT_CHART_DIR;
}

// postgres.password when the values give none, as the chart's randAlphaNum 24: letters and digits
// from the system's random source. It is the only field that then differs between two renders.
std::string GeneratePassword() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device random;
  std::uniform_int_distribution<std::size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string password;
  for (int i = 0; i < 24; ++i) password += kAlphabet[pick(random)];
  return password;
}

using billing::common::SplitFlag;

int Fail(int status, const std::string& message) {
  std::cerr << "provisioner: " << message << "\n";
  return status;
}

int Render(const std::vector<std::string>& args) {
  RenderRequest request;
  request.options.generate_password = GeneratePassword;
  request.options.hash_broker_password = [](const std::string& password) {
    return billing::provisioner::MosquittoPasswordHash(password);
  };
  fs::path chart_dir = DefaultChartDir();
  std::vector<std::string> value_files;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto [arg, operand] = SplitFlag(args[i]);
    auto next = [&]() -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    if (arg == "--chart" || arg == "-f" || arg == "--values" || arg == "--set" ||
        arg == "--managed-by") {
      if (!operand) operand = next();
      if (!operand) return Fail(kExitInvalidInput, arg + " needs an argument\n" + kUsage);
    }
    if (arg == "--chart") {
      chart_dir = *operand;
    } else if (arg == "-f" || arg == "--values") {
      value_files.push_back(*operand);
    } else if (arg == "--set") {
      request.set_arguments.push_back(*operand);
    } else if (arg == "--managed-by") {
      request.options.managed_by = *operand;
    } else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    } else {
      return Fail(kExitInvalidInput, "unknown argument \"" + args[i] + "\"\n" + kUsage);
    }
  }

  const auto chart_values = billing::common::ReadTextFile(chart_dir / "values.yaml");
  const auto chart_yaml = billing::common::ReadTextFile(chart_dir / "Chart.yaml");
  if (!chart_values || !chart_yaml) {
    return Fail(kExitChartUnreadable, "cannot read the chart's values.yaml and Chart.yaml in " +
                                          chart_dir.string() + " (use --chart DIR)");
  }
  request.chart_values_yaml = *chart_values;
  request.chart_yaml = *chart_yaml;
  for (const auto& file : value_files) {
    auto text = billing::common::ReadTextFile(file);
    if (!text) return Fail(kExitInvalidInput, "-f " + file + ": cannot read the file");
    request.value_files.emplace_back(file, std::move(*text));
  }

  auto objects = billing::provisioner::Render(request);
  if (!objects.ok()) return Fail(kExitInvalidInput, objects.error());
  std::cout << billing::provisioner::ToYamlStream(objects.value());
  std::cout.flush();
  return std::cout ? 0 : kExitChartUnreadable;
}

}  // namespace

int Usage(const std::vector<std::string>& args) {
  std::map<std::string, std::string> flags = {
      {"--period", "1h"}, {"--format", "csv"}, {"--max-gap", "5m"}};
  const std::set<std::string> known = {"--prometheus", "--from",   "--to",    "--period",
                                       "--customer",   "--format", "--store", "--max-gap"};
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-h" || args[i] == "--help") {
      std::cout << kUsageUsage;
      return 0;
    }
    auto [flag, value] = SplitFlag(args[i]);
    if (!known.count(flag))
      return Fail(kExitInvalidInput, "unknown argument \"" + args[i] + "\"\n" + kUsageUsage);
    if (!value && i + 1 >= args.size())
      return Fail(kExitInvalidInput, flag + " needs a value\n" + kUsageUsage);
    flags[flag] = value ? *value : args[++i];
  }
  for (const char* required : {"--prometheus", "--from", "--to"}) {
    if (!flags.count(required))
      return Fail(kExitInvalidInput, std::string(required) + " is required\n" + kUsageUsage);
  }
  const auto from = billing::provisioner::ParseTime(flags["--from"]);
  const auto to = billing::provisioner::ParseTime(flags["--to"]);
  if (!from)
    return Fail(kExitInvalidInput, "--from: '" + flags["--from"] +
                                       "' is not RFC 3339 (2026-11-25T10:00:00Z) or Unix seconds");
  if (!to)
    return Fail(kExitInvalidInput, "--to: '" + flags["--to"] +
                                       "' is not RFC 3339 (2026-11-25T10:00:00Z) or Unix seconds");
  const auto period = billing::common::ParseDuration(flags["--period"]);
  if (!period || period->count() % 1000 != 0 || period->count() == 0) {
    return Fail(kExitInvalidInput, "--period: '" + flags["--period"] +
                                       "' is not a whole number of seconds such as 1h or 10s");
  }
  const auto max_gap = billing::common::ParseDuration(flags["--max-gap"]);
  if (!max_gap || max_gap->count() <= 0)
    return Fail(kExitInvalidInput,
                "--max-gap: '" + flags["--max-gap"] + "' is not a duration such as 5m");
  if (flags["--format"] != "csv" && flags["--format"] != "json") {
    return Fail(kExitInvalidInput, "--format: use csv or json");
  }
  billing::provisioner::UsageQuery query;
  query.from = *from;
  query.to = *to;
  query.period_seconds = period->count() / 1000;
  query.max_gap_seconds = static_cast<double>(max_gap->count()) / 1000;
  if (flags.count("--customer")) {
    if (!billing::common::IsValidCustomerId(flags["--customer"])) {
      return Fail(kExitInvalidInput, "--customer: '" + flags["--customer"] +
                                         "' is not a customer id (" +
                                         billing::common::kCustomerIdRule + ")");
    }
    query.customer_id = flags["--customer"];
  }
  const auto periods =
      billing::provisioner::SplitPeriods(query.from, query.to, query.period_seconds);
  if (!periods.ok()) return Fail(kExitInvalidInput, periods.error());
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  if (query.to > now) {
    return Fail(kExitInvalidInput, "--to (" + billing::provisioner::FormatTime(query.to) +
                                       ") is in the future: only closed periods can be billed");
  }

  std::vector<billing::provisioner::UsageRecord> records;
  try {
    records = billing::provisioner::ComputeUsage(
        billing::provisioner::PrometheusClient(flags["--prometheus"]), query, periods.value());
  } catch (const std::exception& e) {
    return Fail(1, e.what());
  }
  if (flags.count("--store")) {
    try {
      billing::provisioner::UsageStore store(flags["--store"]);
      // Only customers the provisioner created are billed (and printed): a customer_id that
      // Prometheus holds but the store does not is named here, never stored.
      auto split =
          billing::provisioner::KeepKnownCustomers(std::move(records), store.CustomerIds());
      records = std::move(split.billed);
      for (const auto& unknown : split.unknown) {
        std::cerr << "provisioner: not billed: customer_id \"" << unknown
                  << "\" has samples but is not a customer in the store\n";
      }
      const auto changed = store.Upsert(records);
      std::cerr << "provisioner: usage_records: " << changed << " of " << records.size()
                << " rows inserted or changed\n";
    } catch (const std::exception& e) {
      return Fail(1, std::string("usage store: ") + e.what());
    }
  }
  std::cout << (flags["--format"] == "json" ? billing::provisioner::ToJson(records)
                                            : billing::provisioner::ToCsv(records));
  return std::cout.flush() ? 0 : 1;
}

int main(int argc, char** argv) {
  // Each signup and login hashes a password in a 19 MiB block, on its own thread.
  billing::common::TuneMalloc();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::cout << kCommands << kUsage << kUsageUsage;
    return args.empty() ? kExitInvalidInput : 0;
  }
  if (args[0] == "--version") {
    std::cout << "provisioner " << billing::common::Version() << " (revision "
              << billing::common::Revision() << ")\n";
    return 0;
  }
  if (args[0] == "usage") return Usage(std::vector<std::string>(args.begin() + 1, args.end()));
  if (args[0] == "serve") {
    return billing::provisioner::Serve(std::vector<std::string>(args.begin() + 1, args.end()),
                                       DefaultChartDir().string());
  }
  if (args[0] == "rotate-encryption-key") {
    return billing::provisioner::RotateEncryptionKey(
        std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args[0] != "render") {
    return Fail(kExitInvalidInput,
                "unknown subcommand \"" + args[0] + "\"\n" + kCommands + kUsage + kUsageUsage);
  }
  return Render(std::vector<std::string>(args.begin() + 1, args.end()));
}
