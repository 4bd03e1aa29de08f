// provisioner: the customer-instance deployment tool. Today it has one subcommand, `render`,
// which prints the customer's Kubernetes objects (the chart's values.yaml as defaults, then -f
// files, then --set arguments) as a YAML stream in apply order.
//
// Exit status: 0 rendered; 2 bad input (an invalid value, a malformed --set, an unreadable -f
// file, bad usage), with one line on stderr naming it; 1 the chart itself cannot be read.

#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "billing/provisioner/render.h"

namespace {

namespace fs = std::filesystem;
using billing::provisioner::RenderRequest;

constexpr int kExitInvalidInput = 2;
constexpr int kExitChartUnreadable = 1;

constexpr char kUsage[] =
    "usage: provisioner render [--chart DIR] [--managed-by NAME] [-f values.yaml]... "
    "[--set key=value]...\n"
    "  --chart DIR        the customer-instance chart (default: $PROVISIONER_CHART_DIR, else "
    "the source tree's manifests/charts/customer-instance)\n"
    "  --managed-by NAME  the app.kubernetes.io/managed-by label (default billing-provisioner)\n"
    "  -f, --values FILE  a values file over the chart's values.yaml (repeatable, later wins)\n"
    "  --set key=value    a value over the files, Helm syntax: a.b=c, a=1,b=2, a\\.b=c "
    "(repeatable)\n";

std::optional<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

fs::path DefaultChartDir() {
  if (const char* from_env = std::getenv("PROVISIONER_CHART_DIR"); from_env && *from_env) {
    return from_env;
  }
  return BILLING_DEFAULT_CHART_DIR;
}

int Fail(int status, const std::string& message) {
  std::cerr << "provisioner: " << message << "\n";
  return status;
}

int Render(const std::vector<std::string>& args) {
  RenderRequest request;
  fs::path chart_dir = DefaultChartDir();
  std::vector<std::string> value_files;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto next = [&]() -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    std::optional<std::string> operand;
    if (arg == "--chart" || arg == "-f" || arg == "--values" || arg == "--set" ||
        arg == "--managed-by") {
      operand = next();
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
    } else if (arg.starts_with("--set=")) {
      request.set_arguments.push_back(arg.substr(6));
    } else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    } else {
      return Fail(kExitInvalidInput, "unknown argument \"" + arg + "\"\n" + kUsage);
    }
  }

  const auto chart_values = ReadFile(chart_dir / "values.yaml");
  const auto chart_yaml = ReadFile(chart_dir / "Chart.yaml");
  if (!chart_values || !chart_yaml) {
    return Fail(kExitChartUnreadable, "cannot read the chart's values.yaml and Chart.yaml in " +
                                          chart_dir.string() + " (use --chart DIR)");
  }
  request.chart_values_yaml = *chart_values;
  request.chart_yaml = *chart_yaml;
  for (const auto& file : value_files) {
    auto text = ReadFile(file);
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

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::cout << kUsage;
    return args.empty() ? kExitInvalidInput : 0;
  }
  if (args[0] != "render") {
    return Fail(kExitInvalidInput, "unknown subcommand \"" + args[0] + "\"\n" + kUsage);
  }
  return Render(std::vector<std::string>(args.begin() + 1, args.end()));
}
