// `provisioner render` end to end: for each values set, the rendered objects validate against
// the Kubernetes and prometheus-operator JSON schemas in ../shared/k8s-schemas, pass the API
// server's semantic checks, and equal what the Helm chart renders (helm template when helm is on
// PATH, else tools/chart-render: Go text/template + Sprig). Bad input exits 2 naming the value.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "billing/provisioner/value.h"
#include "semantic_checks.h"
#include "testbed.h"

namespace billing::provisioner {
namespace {

namespace fs = std::filesystem;
using testbed::CommandResult;
using testbed::RunCommand;
using testbed::TempDir;

const fs::path kSourceDir = BILLING_SOURCE_DIR;
const fs::path kChartDir = kSourceDir / "manifests/charts/customer-instance";
const fs::path kValuesDir = kSourceDir / "tests/provisioner/render/values";
const fs::path kValidator = kSourceDir / "tests/provisioner/render/validate_manifests.py";
const fs::path kBrokerUsers = kSourceDir / "tests/provisioner/render/broker-users.yaml";

// shared/ sits beside the clone (CI lays it out the same way); BILLING_SHARED_DIR overrides.
fs::path SharedDir() {
  const char* from_env = std::getenv("BILLING_SHARED_DIR");
  return from_env != nullptr && *from_env ? fs::path(from_env)
                                          : fs::path(BILLING_DEFAULT_SHARED_DIR);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Runs argv with stdout redirected to `out_path` (stderr alone in the result's output), so that
// warnings on stderr never mix into a YAML stream.
CommandResult RunToFile(const std::vector<std::string>& argv, const fs::path& out_path) {
  std::vector<std::string> shell = {"/bin/sh", "-c", "out=$1; shift; exec \"$@\" >\"$out\"", "sh",
                                    out_path.string()};
  shell.insert(shell.end(), argv.begin(), argv.end());
  return RunCommand(shell);
}

std::vector<std::string> ValuesArgs(const std::vector<std::string>& files) {
  std::vector<std::string> args;
  for (const auto& file : files) {
    args.push_back("-f");
    args.push_back((kValuesDir / file).string());
  }
  return args;
}

std::string Key(const Value& object) {
  auto text = [&](const char* path) {
    const Value* value = object.FindPath(path);
    return value != nullptr && value->IsString() ? value->AsString() : std::string("?");
  };
  return text("apiVersion") + " " + text("kind") + " " +
         (object.FindPath("metadata.namespace") ? text("metadata.namespace") + "/" : "") +
         text("metadata.name");
}

std::map<std::string, Value> ByKey(const std::vector<Value>& objects) {
  std::map<std::string, Value> keyed;
  for (const auto& object : objects) {
    if (!object.IsNull()) keyed.emplace(Key(object), object);
  }
  return keyed;
}

std::vector<Value> NonEmpty(std::vector<Value> documents) {
  std::erase_if(documents, [](const Value& document) { return document.IsNull(); });
  return documents;
}

struct Rendered {
  CommandResult result;
  std::string yaml;
  std::vector<Value> objects;
};

Rendered RenderWithProvisioner(const TempDir& dir, const std::vector<std::string>& args,
                               const std::string& name = "provisioner.yaml") {
  std::vector<std::string> argv = {PROVISIONER_PATH, "render", "--chart", kChartDir.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  Rendered rendered;
  rendered.result = RunToFile(argv, dir.path() / name);
  rendered.yaml = ReadFile(dir.path() / name);
  if (rendered.result.exit_code == 0) rendered.objects = NonEmpty(ParseYamlStream(rendered.yaml));
  return rendered;
}

// The chart rendered by helm (if installed) or by tools/chart-render, with the provisioner's
// own layer (namespace.create=true) passed explicitly.
Rendered RenderChart(const TempDir& dir, const std::vector<std::string>& args,
                     const std::string& name = "chart.yaml") {
  std::vector<std::string> argv;
  const std::string helm = HELM_PATH;
  if (!helm.empty()) {
    argv = {helm, "template", "customer-release", kChartDir.string()};
  } else {
    argv = {CHART_RENDER_PATH, "--chart", kChartDir.string(), "--release-name", "customer-release"};
  }
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--set");
  argv.push_back("namespace.create=true");
  Rendered rendered;
  rendered.result = RunToFile(argv, dir.path() / name);
  rendered.yaml = ReadFile(dir.path() / name);
  if (rendered.result.exit_code == 0) rendered.objects = NonEmpty(ParseYamlStream(rendered.yaml));
  return rendered;
}

// What differs between two object sets, as readable text; empty when equal.
std::string Differences(const std::vector<Value>& expected, const std::vector<Value>& actual) {
  const auto left = ByKey(expected);
  const auto right = ByKey(actual);
  std::string report;
  for (const auto& [key, object] : left) {
    const auto other = right.find(key);
    if (other == right.end()) {
      report += "only in the chart: " + key + "\n";
    } else if (!(other->second == object)) {
      report += "differs: " + key + "\n--- chart\n" + EmitYaml(object) + "--- provisioner\n" +
                EmitYaml(other->second);
    }
  }
  for (const auto& [key, object] : right) {
    if (!left.contains(key)) report += "only in the provisioner: " + key + "\n";
  }
  return report;
}

std::string Base64Decode(const std::string& text) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int bits = 0;
  std::uint32_t buffer = 0;
  for (char c : text) {
    if (c == '=') break;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(kAlphabet.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  return out;
}

const Value* FindObject(const std::vector<Value>& objects, const std::string& kind,
                        const std::string& name) {
  for (const auto& object : objects) {
    const Value* object_kind = object.Find("kind");
    const Value* object_name = object.FindPath("metadata.name");
    if (object_kind && object_name && object_kind->AsString() == kind &&
        object_name->AsString() == name) {
      return &object;
    }
  }
  return nullptr;
}

struct ValueSet {
  std::string name;
  std::vector<std::string> files;
  std::set<std::string> absent_kinds;
  std::size_t object_count;
};

const std::vector<ValueSet>& ValueSets() {
  static const std::vector<ValueSet> kSets = {
      {"seed", {"seed-example.yaml"}, {"ServiceMonitor"}, 17},
      {"ingress_off", {"seed-example.yaml", "ingress-off.yaml"}, {"Ingress", "ServiceMonitor"}, 16},
      {"network_policy_off",
       {"seed-example.yaml", "network-policy-off.yaml"},
       {"NetworkPolicy", "ServiceMonitor"},
       16},
      {"quota_off",
       {"seed-example.yaml", "quota-off.yaml"},
       {"ResourceQuota", "ServiceMonitor"},
       16},
      {"custom_resources", {"seed-example.yaml", "custom-resources.yaml"}, {}, 18},
      {"tricky_company", {"seed-example.yaml", "tricky-company.yaml"}, {"ServiceMonitor"}, 17},
  };
  return kSets;
}

void PrintTo(const ValueSet& set, std::ostream* out) { *out << set.name; }

class ValueSetTest : public ::testing::TestWithParam<ValueSet> {
 protected:
  TempDir dir_{"provisioner-render"};
};

TEST_P(ValueSetTest, RendersTheExpectedObjects) {
  const auto rendered = RenderWithProvisioner(dir_, ValuesArgs(GetParam().files));
  ASSERT_EQ(rendered.result.exit_code, 0) << rendered.result.output;
  EXPECT_EQ(rendered.objects.size(), GetParam().object_count) << rendered.yaml;
  for (const auto& object : rendered.objects) {
    EXPECT_FALSE(GetParam().absent_kinds.contains(object.Find("kind")->AsString())) << Key(object);
  }
}

TEST_P(ValueSetTest, EveryObjectValidatesAgainstTheKubernetesSchemas) {
  const auto rendered = RenderWithProvisioner(dir_, ValuesArgs(GetParam().files));
  ASSERT_EQ(rendered.result.exit_code, 0) << rendered.result.output;
  const auto check = RunCommand({SYSTEM_PYTHON, kValidator.string(), "objects",
                                 (SharedDir() / "k8s-schemas").string(),
                                 (dir_.path() / "provisioner.yaml").string()});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("ok: " + std::to_string(GetParam().object_count) + " checked"),
            std::string::npos)
      << check.output;
}

TEST_P(ValueSetTest, PassesTheApiServersSemanticChecks) {
  const auto rendered = RenderWithProvisioner(dir_, ValuesArgs(GetParam().files));
  ASSERT_EQ(rendered.result.exit_code, 0) << rendered.result.output;
  const auto problems = testing::SemanticProblems(rendered.objects, "abc123");
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
}

TEST_P(ValueSetTest, ChartRendersTheSameObjects) {
  const auto args = ValuesArgs(GetParam().files);
  std::vector<std::string> provisioner_args = args;
  provisioner_args.insert(provisioner_args.end(), {"--managed-by", "Helm"});
  const auto ours = RenderWithProvisioner(dir_, provisioner_args);
  const auto chart = RenderChart(dir_, args);
  ASSERT_EQ(ours.result.exit_code, 0) << ours.result.output;
  ASSERT_EQ(chart.result.exit_code, 0) << chart.result.output;
  ASSERT_EQ(chart.objects.size(), ours.objects.size());
  const std::string differences = Differences(chart.objects, ours.objects);
  EXPECT_TRUE(differences.empty()) << differences;
}

TEST_P(ValueSetTest, ValuesValidateAgainstValuesSchema) {
  std::vector<std::string> argv = {SYSTEM_PYTHON, kValidator.string(), "values",
                                   (kChartDir / "values.schema.json").string(),
                                   (kChartDir / "values.yaml").string()};
  for (const auto& file : GetParam().files) argv.push_back((kValuesDir / file).string());
  const auto check = RunCommand(argv);
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST_P(ValueSetTest, RenderedYamlPassesYamllint) {
  const auto ours = RenderWithProvisioner(dir_, ValuesArgs(GetParam().files));
  const auto chart = RenderChart(dir_, ValuesArgs(GetParam().files));
  ASSERT_EQ(ours.result.exit_code, 0) << ours.result.output;
  ASSERT_EQ(chart.result.exit_code, 0) << chart.result.output;
  // Long lines are data (base64, annotations), not style.
  const auto lint = RunCommand(
      {YAMLLINT_PATH, "-s", "-d", "{extends: default, rules: {line-length: disable}}",
       (dir_.path() / "provisioner.yaml").string(), (dir_.path() / "chart.yaml").string()});
  EXPECT_EQ(lint.exit_code, 0) << lint.output;
}

INSTANTIATE_TEST_SUITE_P(ValueSets, ValueSetTest, ::testing::ValuesIn(ValueSets()),
                         [](const auto& info) { return info.param.name; });

// The checks above can fail: each broken variant of a good rendering is caught.
class CheckersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto rendered = RenderWithProvisioner(dir_, ValuesArgs({"seed-example.yaml"}));
    ASSERT_EQ(rendered.result.exit_code, 0) << rendered.result.output;
    objects_ = rendered.objects;
  }
  Value& Object(const std::string& kind, const std::string& name) {
    for (auto& object : objects_) {
      if (object.Find("kind")->AsString() == kind &&
          object.FindPath("metadata.name")->AsString() == name) {
        return object;
      }
    }
    throw std::runtime_error("no " + kind + " " + name);
  }
  static Value* At(Value& value, const std::string& path) {
    return const_cast<Value*>(value.FindPath(path));
  }
  std::vector<std::string> Problems() const {
    return testing::SemanticProblems(objects_, "abc123");
  }

  TempDir dir_{"provisioner-checkers"};
  std::vector<Value> objects_;
};

TEST_F(CheckersTest, SemanticChecksCatchBrokenReferences) {
  ASSERT_TRUE(Problems().empty());
  Value& api_service = Object("Service", "customer-abc123-api");
  (*At(api_service, "spec.ports")).AsList()[0].Set("targetPort", "web");
  auto problems = Problems();
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_NE(problems[0].find("targetPort web"), std::string::npos);

  SetUp();
  At(Object("Ingress", "customer-abc123-ingress"), "spec.rules")
      ->AsList()[0]
      .Find("http")
      ->Find("paths")
      ->AsList()[1]
      .Find("backend")
      ->Find("service")
      ->Set("name", "customer-abc123-apx");
  EXPECT_EQ(Problems().size(), 1u);

  SetUp();
  At(Object("Deployment", "customer-abc123-exporter"), "spec.selector.matchLabels")
      ->Set("app.kubernetes.io/component", "exporterx");
  EXPECT_FALSE(Problems().empty());

  SetUp();
  Object("Secret", "customer-abc123-secrets").Find("data")->Erase("DATABASE_URL");
  EXPECT_EQ(Problems().size(), 2u);  // the API's and the exporter's env
}

TEST_F(CheckersTest, SemanticChecksCatchBadNamesLabelsAndQuantities) {
  Object("ConfigMap", "customer-abc123-exporter-config")
      .Find("metadata")
      ->Set("namespace", "default");
  EXPECT_EQ(Problems().size(), 1u);
  SetUp();
  Object("Secret", "customer-abc123-secrets").Find("metadata")->Find("labels")->Set("bad", "x y");
  EXPECT_EQ(Problems().size(), 1u);
  SetUp();
  At(Object("ResourceQuota", "customer-abc123-quota"), "spec.hard")->Set("limits.cpu", "100mm");
  EXPECT_FALSE(Problems().empty());
  SetUp();
  At(Object("ResourceQuota", "customer-abc123-quota"), "spec.hard")->Set("limits.memory", "1Gi");
  auto problems = Problems();
  ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
  EXPECT_NE(problems[0].find("limits.memory of the rendered workloads exceeds"), std::string::npos);
}

TEST_F(CheckersTest, SchemaValidationCatchesAnUnknownField) {
  At(Object("Deployment", "customer-abc123-api"), "spec.template.spec")
      ->Set("restartPolicyy", "Always");
  std::string stream;
  for (const auto& object : objects_) stream += "---\n" + EmitYaml(object);
  WriteFile(dir_.path() / "broken.yaml", stream);
  const auto check =
      RunCommand({SYSTEM_PYTHON, kValidator.string(), "objects",
                  (SharedDir() / "k8s-schemas").string(), (dir_.path() / "broken.yaml").string()});
  EXPECT_EQ(check.exit_code, 1) << check.output;
  EXPECT_NE(check.output.find("restartPolicyy"), std::string::npos) << check.output;
}

TEST_F(CheckersTest, ParityComparisonSeesASingleChangedValue) {
  const auto original = objects_;
  EXPECT_EQ(Differences(original, objects_), "");
  At(Object("Deployment", "customer-abc123-api"), "spec")->Set("replicas", 2);
  EXPECT_NE(Differences(original, objects_).find("differs: apps/v1 Deployment"), std::string::npos);
  objects_.pop_back();
  EXPECT_NE(Differences(original, objects_).find("only in the chart"), std::string::npos);
}

TEST(ValuesSchemaTest, RejectsAnInvalidCustomerId) {
  TempDir dir("provisioner-values");
  WriteFile(dir.path() / "bad.yaml", "customer:\n  id: ABC_123\n");
  const auto check =
      RunCommand({SYSTEM_PYTHON, kValidator.string(), "values",
                  (kChartDir / "values.schema.json").string(), (kChartDir / "values.yaml").string(),
                  (kValuesDir / "seed-example.yaml").string(), (dir.path() / "bad.yaml").string()});
  EXPECT_EQ(check.exit_code, 1) << check.output;
  EXPECT_NE(check.output.find("customer.id"), std::string::npos) << check.output;
}

// Helm checks values.schema.json before it renders: the seed's template example (customer.id and
// license.key only) must pass it, as must the chart's own defaults beneath.
TEST(ValuesSchemaTest, AcceptsTheSeedsTemplateExample) {
  TempDir dir("provisioner-values");
  WriteFile(dir.path() / "seed-template.yaml", "customer:\n  id: test123\nlicense:\n  key: test\n");
  const auto check = RunCommand(
      {SYSTEM_PYTHON, kValidator.string(), "values", (kChartDir / "values.schema.json").string(),
       (kChartDir / "values.yaml").string(), (dir.path() / "seed-template.yaml").string()});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  WriteFile(dir.path() / "old-image.yaml",
            "exporter:\n  image: iotistic/billing-exporter:latest\n");
  const auto old_image = RunCommand(
      {SYSTEM_PYTHON, kValidator.string(), "values", (kChartDir / "values.schema.json").string(),
       (kChartDir / "values.yaml").string(), (dir.path() / "seed-template.yaml").string(),
       (dir.path() / "old-image.yaml").string()});
  EXPECT_EQ(old_image.exit_code, 1) << old_image.output;
  EXPECT_NE(old_image.output.find("exporter.image"), std::string::npos) << old_image.output;
}

// Exit 2 and one line naming the value, for each kind of bad input the issue lists.
TEST(BadInputTest, ExitsTwoNamingTheValue) {
  TempDir dir("provisioner-bad-input");
  const std::string seed = (kValuesDir / "seed-example.yaml").string();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-f", seed, "--set", "customer.id=ABC_123"}, "customer.id: \"ABC_123\" is not a DNS-1123"},
      {{"-f", seed, "--set", "customer.id=" + std::string(64, 'a')}, "customer.id: \"aaaa"},
      {{"-f", seed, "--set", "customer.id="}, "customer.id: is required"},
      {{"--set", "customer.id=abc123"}, "license.key: is required"},
      {{"-f", seed, "--set", "customer.email=nobody"},
       "customer.email: \"nobody\" is not an email"},
      {{"-f", seed, "--set", "license.key="}, "license.key: is required"},
      {{"-f", seed, "--set", "customer.id"}, "--set \"customer.id\": expected key=value"},
      {{"-f", seed, "--set", "a..b=1"}, "--set \"a..b=1\": empty key segment"},
      {{"-f", seed, "--set"}, "--set needs an argument"},
      {{"-f", (dir.path() / "missing.yaml").string()}, "missing.yaml: cannot read"},
      {{"-f", seed, "--bogus"}, "unknown argument \"--bogus\""},
  };
  for (const auto& [args, message] : cases) {
    const auto rendered = RenderWithProvisioner(dir, args);
    EXPECT_EQ(rendered.result.exit_code, 2) << message;
    EXPECT_NE(rendered.result.output.find(message), std::string::npos)
        << "expected \"" << message << "\" in: " << rendered.result.output;
    EXPECT_EQ(rendered.yaml, "") << "nothing on stdout for " << message;
  }
}

TEST(BadInputTest, ChartRefusesTheSameIds) {
  TempDir dir("provisioner-bad-chart");
  const std::string seed = (kValuesDir / "seed-example.yaml").string();
  for (const std::string& id : std::vector<std::string>{"ABC_123", std::string(64, 'a'), ""}) {
    const auto rendered = RenderChart(dir, {"-f", seed, "--set", "customer.id=" + id});
    EXPECT_NE(rendered.result.exit_code, 0) << id;
    EXPECT_NE(rendered.result.output.find("customer.id"), std::string::npos)
        << rendered.result.output;
  }
  const auto no_license = RenderChart(dir, {"-f", seed, "--set", "license.key="});
  EXPECT_NE(no_license.result.exit_code, 0);
  EXPECT_NE(no_license.result.output.find("license.key is required"), std::string::npos)
      << no_license.result.output;
}

TEST(RenderCliTest, OutputIsByteForByteDeterministic) {
  TempDir dir("provisioner-determinism");
  const auto args = ValuesArgs({"seed-example.yaml", "custom-resources.yaml"});
  const auto first = RenderWithProvisioner(dir, args, "first.yaml");
  const auto second = RenderWithProvisioner(dir, args, "second.yaml");
  ASSERT_EQ(first.result.exit_code, 0) << first.result.output;
  EXPECT_FALSE(first.yaml.empty());
  EXPECT_EQ(first.yaml, second.yaml);
}

// The generated database password of a rendering (checked: 24 letters and digits, the same in
// POSTGRES_PASSWORD and DATABASE_URL), and the objects with it replaced by a fixed text.
std::pair<std::string, std::vector<Value>> WithoutGeneratedPassword(std::vector<Value> objects,
                                                                    const std::string& secret) {
  for (auto& object : objects) {
    const Value* kind = object.Find("kind");
    if (kind == nullptr || kind->AsString() != "Secret" ||
        object.FindPath("metadata.name")->AsString() != secret) {
      continue;
    }
    Value data = *object.Find("data");
    const std::string password = Base64Decode(data.Find("POSTGRES_PASSWORD")->AsString());
    const std::string url = Base64Decode(data.Find("DATABASE_URL")->AsString());
    EXPECT_TRUE(std::regex_match(password, std::regex("[A-Za-z0-9]{24}"))) << password;
    EXPECT_NE(url.find(":" + password + "@"), std::string::npos) << url;
    data.Set("POSTGRES_PASSWORD", "generated");
    data.Set("DATABASE_URL", "generated");
    object.Set("data", std::move(data));
    return {password, objects};
  }
  ADD_FAILURE() << "no Secret " << secret;
  return {};
}

// The seed README's commands as it writes them, plus the broker's users (the chart cannot hash
// their passwords): its template example sets only customer.id and license.key, its helm install
// no postgres.password. The chart and `provisioner render` both accept them and generate the
// password; that one value is all that differs between two renderings, and between the chart's
// and the provisioner's.
TEST(RenderCliTest, SeedCommandsWorkWithAGeneratedPassword) {
  TempDir dir("provisioner-seed-commands");
  const std::vector<std::string> args = {
      "--set", "customer.id=test123", "--set", "license.key=test", "-f", kBrokerUsers.string()};
  std::vector<std::string> as_helm = {"--managed-by", "Helm"};
  as_helm.insert(as_helm.end(), args.begin(), args.end());
  const auto first = RenderWithProvisioner(dir, as_helm, "first.yaml");
  const auto second = RenderWithProvisioner(dir, as_helm, "second.yaml");
  const auto chart = RenderChart(dir, args);
  ASSERT_EQ(first.result.exit_code, 0) << first.result.output;
  ASSERT_EQ(second.result.exit_code, 0) << second.result.output;
  ASSERT_EQ(chart.result.exit_code, 0) << chart.result.output;
  const auto [first_password, first_objects] =
      WithoutGeneratedPassword(first.objects, "customer-test123-secrets");
  const auto [second_password, second_objects] =
      WithoutGeneratedPassword(second.objects, "customer-test123-secrets");
  const auto [chart_password, chart_objects] =
      WithoutGeneratedPassword(chart.objects, "customer-test123-secrets");
  EXPECT_NE(first_password, second_password);
  EXPECT_NE(first_password, chart_password);
  EXPECT_EQ(Differences(first_objects, second_objects), "");
  EXPECT_EQ(Differences(chart_objects, first_objects), "");
  EXPECT_NE(FindObject(first.objects, "Deployment", "customer-test123-api"), nullptr);

  // The helm install example: e-mail and company given, still no password; domain.base given.
  const auto install = RenderWithProvisioner(
      dir,
      {"--set", "customer.id=abc123", "--set", "customer.email=john@example.com", "--set",
       "customer.companyName=Acme Corp", "--set", "license.key=eyJhbGc...", "--set",
       "domain.base=iotistic.cloud", "-f", kBrokerUsers.string()},
      "install.yaml");
  ASSERT_EQ(install.result.exit_code, 0) << install.result.output;
  WithoutGeneratedPassword(install.objects, "customer-abc123-secrets");
}

// Without the broker's users, `provisioner render` generates each a password and its $7$ hash
// (different every time, never shared between the users); the chart refuses, naming the value.
TEST(RenderCliTest, BrokerUsersAreGeneratedByTheProvisionerAndRequiredByTheChart) {
  TempDir dir("provisioner-broker-users");
  const std::vector<std::string> args = {"--set", "customer.id=test123", "--set",
                                         "license.key=test"};
  std::map<std::string, std::string> seen;
  for (const char* name : {"first.yaml", "second.yaml"}) {
    const auto rendered = RenderWithProvisioner(dir, args, name);
    ASSERT_EQ(rendered.result.exit_code, 0) << rendered.result.output;
    const Value* secret = FindObject(rendered.objects, "Secret", "customer-test123-secrets");
    ASSERT_NE(secret, nullptr);
    const auto value = [&](const char* key) {
      return Base64Decode(secret->FindPath(std::string("data.") + key)->AsString());
    };
    const std::string exporter = value("MQTT_EXPORTER_PASSWORD");
    const std::string device = value("MQTT_DEVICE_PASSWORD");
    EXPECT_TRUE(std::regex_match(exporter, std::regex("[A-Za-z0-9]{24}"))) << exporter;
    EXPECT_NE(exporter, device);
    const std::regex entry(R"(billing-exporter:\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==\n)"
                           R"(device:\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==\n)");
    EXPECT_TRUE(std::regex_match(value("MOSQUITTO_PASSWORDS"), entry))
        << value("MOSQUITTO_PASSWORDS");
    EXPECT_FALSE(seen.contains(exporter));
    seen[exporter] = name;
  }
  const auto chart = RenderChart(dir, args);
  EXPECT_NE(chart.result.exit_code, 0);
  EXPECT_NE(chart.result.output.find("mosquitto.auth.exporter.password"), std::string::npos)
      << chart.result.output;
}

// helm upgrade without postgres.password keeps the password the install generated: lookup finds
// the release's Secret (chart-render --cluster renders as an upgrade against the objects given).
TEST(ChartTest, UpgradeKeepsTheGeneratedPassword) {
  if (!std::string(HELM_PATH).empty()) GTEST_SKIP() << "helm template cannot look objects up";
  TempDir dir("chart-upgrade");
  const std::vector<std::string> args = {
      "--set", "customer.id=test123", "--set", "license.key=test", "-f", kBrokerUsers.string()};
  const auto install = RenderChart(dir, args, "install.yaml");
  ASSERT_EQ(install.result.exit_code, 0) << install.result.output;
  const auto installed = WithoutGeneratedPassword(install.objects, "customer-test123-secrets");

  auto upgrade_args = args;
  upgrade_args.insert(upgrade_args.end(), {"--cluster", (dir.path() / "install.yaml").string()});
  const auto upgrade = RenderChart(dir, upgrade_args, "upgrade.yaml");
  ASSERT_EQ(upgrade.result.exit_code, 0) << upgrade.result.output;
  const auto upgraded = WithoutGeneratedPassword(upgrade.objects, "customer-test123-secrets");
  EXPECT_EQ(upgraded.first, installed.first);
  EXPECT_EQ(Differences(installed.second, upgraded.second), "");

  // Another customer's Secret is not this one's: a new password.
  const auto other =
      RenderChart(dir,
                  {"--set", "customer.id=other1", "--set", "license.key=test", "-f",
                   kBrokerUsers.string(), "--cluster", (dir.path() / "install.yaml").string()},
                  "other.yaml");
  ASSERT_EQ(other.result.exit_code, 0) << other.result.output;
  EXPECT_NE(WithoutGeneratedPassword(other.objects, "customer-other1-secrets").first,
            installed.first);

  // A password given in the values wins over the stored one.
  upgrade_args.insert(upgrade_args.end(), {"--set", "postgres.password=n3w-Passw0rd"});
  const auto given = RenderChart(dir, upgrade_args, "given.yaml");
  ASSERT_EQ(given.result.exit_code, 0) << given.result.output;
  const Value* secret = FindObject(given.objects, "Secret", "customer-test123-secrets");
  ASSERT_NE(secret, nullptr);
  EXPECT_EQ(Base64Decode(secret->FindPath("data.POSTGRES_PASSWORD")->AsString()), "n3w-Passw0rd");
}

TEST(RenderCliTest, CompanyNameWithQuotesColonsNewlinesAndUnicodeSurvives) {
  TempDir dir("provisioner-company");
  const auto rendered =
      RenderWithProvisioner(dir, ValuesArgs({"seed-example.yaml", "tricky-company.yaml"}));
  ASSERT_EQ(rendered.result.exit_code, 0) << rendered.result.output;
  const std::string expected =
      " Ünïcode \"Quoted\" Co.: Ltd. #1\nSecond line\\n 'single' — 株式会社 🚀 ";
  const Value* ns = FindObject(rendered.objects, "Namespace", "customer-abc123");
  ASSERT_NE(ns, nullptr);
  EXPECT_EQ(ns->FindPath("metadata.annotations")->Find("iotistic.io/company-name")->AsString(),
            expected);
  const Value* secret = FindObject(rendered.objects, "Secret", "customer-abc123-secrets");
  ASSERT_NE(secret, nullptr);
  EXPECT_EQ(Base64Decode(secret->FindPath("data.CUSTOMER_COMPANY_NAME")->AsString()), expected);
  // The name never leaks into a place where it could break the structure.
  EXPECT_EQ(rendered.objects.size(), 17u);
}

// The seed README's troubleshooting commands name real objects: extract every name they use and
// find it in the objects rendered for the seed's customer abc123.
TEST(RenderCliTest, SeedTroubleshootingCommandsFindWhatTheyName) {
  TempDir dir("provisioner-seed");
  const auto rendered = RenderWithProvisioner(dir, ValuesArgs({"seed-example.yaml"}));
  ASSERT_EQ(rendered.result.exit_code, 0) << rendered.result.output;
  const std::string readme = ReadFile(SharedDir() / "seed/customer-instance-chart-README.md");
  ASSERT_FALSE(readme.empty()) << "seed README not found under " << SharedDir();

  auto service_port = [&](const std::string& name, std::int64_t port) {
    const Value* service = FindObject(rendered.objects, "Service", name);
    if (service == nullptr) return false;
    for (const auto& entry : service->FindPath("spec.ports")->AsList()) {
      if (entry.Find("port")->AsInt() == port) return true;
    }
    return false;
  };
  int found = 0;
  const std::regex kSvc(R"(svc/(customer-abc123[-a-z0-9]*) (\d+):)");
  for (auto it = std::sregex_iterator(readme.begin(), readme.end(), kSvc);
       it != std::sregex_iterator(); ++it, ++found) {
    EXPECT_TRUE(service_port((*it)[1], std::stoll((*it)[2]))) << (*it)[0];
  }
  const std::regex kDeployment(R"(deployment/(customer-abc123[-a-z0-9]*))");
  for (auto it = std::sregex_iterator(readme.begin(), readme.end(), kDeployment);
       it != std::sregex_iterator(); ++it, ++found) {
    EXPECT_NE(FindObject(rendered.objects, "Deployment", (*it)[1]), nullptr) << (*it)[0];
  }
  const std::regex kHostPort(R"((?:-h |nc -zv )(customer-abc123[-a-z0-9]*)(?: -p)? (\d+))");
  for (auto it = std::sregex_iterator(readme.begin(), readme.end(), kHostPort);
       it != std::sregex_iterator(); ++it, ++found) {
    EXPECT_TRUE(service_port((*it)[1], std::stoll((*it)[2]))) << (*it)[0];
  }
  const std::regex kSecretKey(R"(secret (customer-abc123[-a-z0-9]*) .*\{\.data\.([A-Z_]+)\})");
  for (auto it = std::sregex_iterator(readme.begin(), readme.end(), kSecretKey);
       it != std::sregex_iterator(); ++it, ++found) {
    const Value* secret = FindObject(rendered.objects, "Secret", (*it)[1]);
    ASSERT_NE(secret, nullptr) << (*it)[0];
    const Value* data = secret->FindPath("data")->Find((*it)[2].str());
    ASSERT_NE(data, nullptr) << (*it)[0];
    EXPECT_EQ(Base64Decode(data->AsString()),
              "eyJhbGciOiJIUzI1NiJ9.eyJjdXN0b21lciI6ImFiYzEyMyJ9.c2lnbmF0dXJl");
  }
  // A StatefulSet's PVCs are named <claim template>-<statefulset>-<ordinal>.
  const std::regex kPvc(R"(pvc ([-a-z0-9]+)-(customer-abc123-[a-z]+)-0 )");
  for (auto it = std::sregex_iterator(readme.begin(), readme.end(), kPvc);
       it != std::sregex_iterator(); ++it, ++found) {
    const Value* sts = FindObject(rendered.objects, "StatefulSet", (*it)[2]);
    ASSERT_NE(sts, nullptr) << (*it)[0];
    EXPECT_EQ(sts->FindPath("spec.volumeClaimTemplates")
                  ->AsList()[0]
                  .FindPath("metadata.name")
                  ->AsString(),
              (*it)[1].str());
  }
  for (const char* kind : {"ResourceQuota", "Ingress"}) {  // describe resourcequota, get ingress
    bool present = false;
    for (const auto& object : rendered.objects) present |= object.Find("kind")->AsString() == kind;
    EXPECT_TRUE(present) << kind;
  }
  // svc/...-exporter, deployment/...-api three times (logs, two execs), pg_isready -h, nc -zv,
  // the secret's key and the PVC: a changed README shows up here rather than going unchecked.
  EXPECT_EQ(found, 8);
}

TEST(RenderCliTest, ExporterAcceptsTheRenderedConfig) {
  TempDir dir("provisioner-exporter-config");
  const auto rendered =
      RenderWithProvisioner(dir, ValuesArgs({"seed-example.yaml", "custom-resources.yaml"}));
  ASSERT_EQ(rendered.result.exit_code, 0) << rendered.result.output;
  const Value* config_map =
      FindObject(rendered.objects, "ConfigMap", "customer-abc123-exporter-config");
  ASSERT_NE(config_map, nullptr);
  const std::string config = config_map->FindPath("data")->Find("config.yaml")->AsString();
  EXPECT_NE(config.find("sample_interval: \"30s\""), std::string::npos) << config;
  WriteFile(dir.path() / "config.yaml", config);
  const auto check = RunCommand(
      {BILLING_EXPORTER_PATH, "--check-config", "--config", (dir.path() / "config.yaml").string()},
      {{"DATABASE_URL",
        "postgresql://iotistic:s3cret-Passw0rd@customer-abc123-postgres:5433/iotistic"},
       {"MQTT_URL", "tcp://customer-abc123-mosquitto:11883"}});
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST(ChartTest, ChartYamlFilesPassYamllint) {
  const auto lint =
      RunCommand({YAMLLINT_PATH, "-s", "-c", (kSourceDir / "manifests/.yamllint.yaml").string(),
                  (kSourceDir / "manifests").string(), kValuesDir.string()});
  EXPECT_EQ(lint.exit_code, 0) << lint.output;
}

TEST(ChartTest, NotesRender) {
  if (std::string(HELM_PATH).size() > 0) GTEST_SKIP() << "helm template does not print NOTES";
  TempDir dir("provisioner-notes");
  const auto notes = RunCommand({CHART_RENDER_PATH, "--chart", kChartDir.string(), "--notes", "-f",
                                 (kValuesDir / "seed-example.yaml").string()});
  ASSERT_EQ(notes.exit_code, 0) << notes.output;
  EXPECT_NE(notes.output.find("https://abc123.iotistic.cloud/"), std::string::npos) << notes.output;
  EXPECT_NE(notes.output.find("postgres-data-customer-abc123-postgres-0"), std::string::npos);
}

// `--flag=value` means `--flag value` for every flag of `provisioner render`.
TEST(ProvisionerCliTest, FlagsTakeEqualsValues) {
  TempDir dir("provisioner-flags");
  const std::string seed = (kValuesDir / "seed-example.yaml").string();
  const auto separate = RenderWithProvisioner(
      dir, {"--values", seed, "--set", "ingress.enabled=false", "--managed-by", "x"}, "a.yaml");
  const auto joined = RenderWithProvisioner(
      dir, {"--values=" + seed, "--set=ingress.enabled=false", "--managed-by=x"}, "b.yaml");
  ASSERT_EQ(separate.result.exit_code, 0) << separate.result.output;
  ASSERT_EQ(joined.result.exit_code, 0) << joined.result.output;
  EXPECT_EQ(joined.yaml, separate.yaml);
  EXPECT_EQ(separate.yaml.find("kind: Ingress"), std::string::npos);
  EXPECT_NE(separate.yaml.find("app.kubernetes.io/managed-by: x"), std::string::npos);
}

// A bare `provisioner` names every subcommand (and exits 2); --help does the same with 0.
TEST(ProvisionerCliTest, BareCommandListsEverySubcommand) {
  for (const bool help : {false, true}) {
    std::vector<std::string> argv = {PROVISIONER_PATH};
    if (help) argv.push_back("--help");
    const auto result = RunCommand(argv);
    EXPECT_EQ(result.exit_code, help ? 0 : 2) << result.output;
    for (const char* command : {"  render  ", "  serve   ", "  usage   "}) {
      EXPECT_NE(result.output.find(command), std::string::npos) << command << result.output;
    }
  }
}

}  // namespace
}  // namespace billing::provisioner
