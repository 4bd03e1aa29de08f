// `provisioner render` end to end: for each values set, the rendered objects validate against
// the Kubernetes and prometheus-operator JSON schemas in ../shared/k8s-schemas, pass the API
// server's semantic checks, and equal what the Helm chart renders (helm template when helm is on
// PATH, else tools/chart-render: Go text/template + Sprig). Bad input exits 2 naming the value.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <ostream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "billing/provisioner/value.h"
#include "network_policy_eval.h"
#include "pod_security.h"
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
      {"seed", {"seed-example.yaml"}, {"ServiceMonitor"}, 22},
      {"ingress_off", {"seed-example.yaml", "ingress-off.yaml"}, {"Ingress", "ServiceMonitor"}, 21},
      {"network_policy_off",
       {"seed-example.yaml", "network-policy-off.yaml"},
       {"NetworkPolicy", "ServiceMonitor"},
       16},
      {"quota_off",
       {"seed-example.yaml", "quota-off.yaml"},
       {"ResourceQuota", "ServiceMonitor"},
       21},
      {"custom_resources", {"seed-example.yaml", "custom-resources.yaml"}, {}, 23},
      {"tricky_company", {"seed-example.yaml", "tricky-company.yaml"}, {"ServiceMonitor"}, 22},
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

// Every pod either renderer produces would be admitted by a namespace enforcing Pod Security
// "restricted", and the rendered Namespace enforces it.
void ExpectRestricted(const std::vector<Value>& objects, const std::string& who) {
  const auto pods = testing::PodSpecs(objects);
  EXPECT_EQ(pods.size(), 5u) << who;  // PostgreSQL, Mosquitto, API, dashboard, exporter
  for (const auto& pod : pods) {
    const auto violations = testing::RestrictedViolations(pod);
    EXPECT_TRUE(violations.empty()) << who << ": " << ::testing::PrintToString(violations);
  }
  const Value* ns = FindObject(objects, "Namespace", "customer-abc123");
  ASSERT_NE(ns, nullptr) << who;
  const Value* labels = ns->FindPath("metadata.labels");
  ASSERT_NE(labels, nullptr) << who;
  for (const char* mode : {"enforce", "audit", "warn"}) {
    const std::string key = std::string("pod-security.kubernetes.io/") + mode;
    const Value* level = labels->Find(key);
    const Value* version = labels->Find(key + "-version");
    ASSERT_TRUE(level != nullptr && version != nullptr) << who << " " << key;
    EXPECT_EQ(level->AsString(), "restricted") << who << " " << key;
    EXPECT_EQ(version->AsString(), "latest") << who << " " << key;
  }
}

TEST_P(ValueSetTest, EveryPodMeetsTheRestrictedPodSecurityProfile) {
  const auto ours = RenderWithProvisioner(dir_, ValuesArgs(GetParam().files));
  const auto chart = RenderChart(dir_, ValuesArgs(GetParam().files));
  ASSERT_EQ(ours.result.exit_code, 0) << ours.result.output;
  ASSERT_EQ(chart.result.exit_code, 0) << chart.result.output;
  ExpectRestricted(ours.objects, "provisioner");
  ExpectRestricted(chart.objects, "chart");
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

// Root and a range that is not one are refused by both renderers, naming the value.
TEST(BadInputTest, RootUsersAndBadCidrsAreRefused) {
  TempDir dir("provisioner-bad-security");
  const std::string seed = (kValuesDir / "seed-example.yaml").string();
  WriteFile(dir.path() / "cidr.yaml", "networkPolicy:\n  apiServerCidrs: [10.0.0.0/33]\n");
  const auto bad_cidr = (dir.path() / "cidr.yaml").string();
  const auto ours = RenderWithProvisioner(dir, {"-f", seed, "-f", bad_cidr});
  EXPECT_EQ(ours.result.exit_code, 2);
  EXPECT_NE(ours.result.output.find("networkPolicy.apiServerCidrs: \"10.0.0.0/33\" is not an IPv4"),
            std::string::npos)
      << ours.result.output;
  const auto chart = RenderChart(dir, {"-f", seed, "-f", bad_cidr});
  EXPECT_NE(chart.result.exit_code, 0);
  EXPECT_NE(
      chart.result.output.find("networkPolicy.apiServerCidrs: \"10.0.0.0/33\" is not an IPv4"),
      std::string::npos)
      << chart.result.output;
  for (const char* user : {"postgres.runAsUser=0", "dashboard.runAsGroup=0"}) {
    const auto root = RenderWithProvisioner(dir, {"-f", seed, "--set", user});
    EXPECT_EQ(root.result.exit_code, 2) << user;
    EXPECT_NE(root.result.output.find(std::string(user).substr(0, std::string(user).find('=')) +
                                      ": 0 is not from 1"),
              std::string::npos)
        << root.result.output;
  }
  WriteFile(dir.path() / "root.yaml", "api:\n  runAsUser: 0\n");
  const auto schema = RunCommand(
      {SYSTEM_PYTHON, kValidator.string(), "values", (kChartDir / "values.schema.json").string(),
       (kChartDir / "values.yaml").string(), seed, (dir.path() / "root.yaml").string()});
  EXPECT_EQ(schema.exit_code, 1) << schema.output;
  EXPECT_NE(schema.output.find("api.runAsUser"), std::string::npos) << schema.output;
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
  EXPECT_EQ(rendered.objects.size(), 22u);
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

// The chart's own defaults (only what is required given): restricted too.
TEST(PodSecurityTest, DefaultValuesMeetTheRestrictedProfile) {
  TempDir dir("provisioner-pod-security");
  const std::vector<std::string> args = {"--set", "customer.id=abc123", "--set", "license.key=k",
                                         "-f",    kBrokerUsers.string()};
  const auto ours = RenderWithProvisioner(dir, args);
  const auto chart = RenderChart(dir, args);
  ASSERT_EQ(ours.result.exit_code, 0) << ours.result.output;
  ASSERT_EQ(chart.result.exit_code, 0) << chart.result.output;
  ExpectRestricted(ours.objects, "provisioner");
  ExpectRestricted(chart.objects, "chart");
  // The images' own users: postgres 70 (alpine), mosquitto 1883; the dashboard on port 80 keeps
  // NET_BIND_SERVICE and nothing else.
  auto pod = [&](const std::string& kind, const std::string& name) {
    const Value* object = FindObject(chart.objects, kind, name);
    return object != nullptr ? object->FindPath("spec.template.spec") : nullptr;
  };
  const Value* postgres = pod("StatefulSet", "customer-abc123-postgres");
  const Value* mosquitto = pod("Deployment", "customer-abc123-mosquitto");
  const Value* dashboard = pod("Deployment", "customer-abc123-dashboard");
  ASSERT_TRUE(postgres && mosquitto && dashboard);
  EXPECT_EQ(postgres->FindPath("securityContext.runAsUser")->AsInt(), 70);
  EXPECT_EQ(postgres->FindPath("securityContext.fsGroup")->AsInt(), 70);
  EXPECT_EQ(mosquitto->FindPath("securityContext.runAsUser")->AsInt(), 1883);
  const Value& dashboard_container = dashboard->Find("containers")->AsList()[0];
  EXPECT_EQ(EmitYaml(*dashboard_container.FindPath("securityContext.capabilities")),
            "drop:\n  - ALL\nadd:\n  - NET_BIND_SERVICE\n");
}

// The restricted checker is not vacuous: each broken rule of a good pod is reported.
TEST_F(CheckersTest, RestrictedProfileCheckCatchesEachBrokenRule) {
  const std::string pod_path = "spec.template.spec";
  auto violations = [&]() {
    std::vector<std::string> all;
    for (const auto& pod : testing::PodSpecs(objects_)) {
      for (auto& violation : testing::RestrictedViolations(pod)) all.push_back(violation);
    }
    return all;
  };
  ASSERT_TRUE(violations().empty()) << ::testing::PrintToString(violations());
  const std::vector<std::pair<std::string, std::function<void(Value&)>>> breaks = {
      {"runAsNonRoot", [](Value& pod) { pod.Find("securityContext")->Erase("runAsNonRoot"); }},
      {"runAsUser", [](Value& pod) { pod.Find("securityContext")->Set("runAsUser", 0); }},
      {"seccompProfile", [](Value& pod) { pod.Find("securityContext")->Erase("seccompProfile"); }},
      {"Unconfined",
       [](Value& pod) {
         pod.Find("securityContext")->Set("seccompProfile", Value::Map{{"type", "Unconfined"}});
       }},
      {"allowPrivilegeEscalation",
       [](Value& pod) {
         pod.Find("containers")
             ->AsList()[0]
             .Find("securityContext")
             ->Erase("allowPrivilegeEscalation");
       }},
      {"must include ALL",
       [](Value& pod) {
         pod.Find("containers")->AsList()[0].Find("securityContext")->Erase("capabilities");
       }},
      {"SYS_ADMIN may not be added",
       [](Value& pod) {
         pod.Find("containers")
             ->AsList()[0]
             .Find("securityContext")
             ->Find("capabilities")
             ->Set("add", Value::List{"SYS_ADMIN"});
       }},
      {"privileged",
       [](Value& pod) {
         pod.Find("containers")->AsList()[0].Find("securityContext")->Set("privileged", true);
       }},
      {"hostNetwork", [](Value& pod) { pod.Set("hostNetwork", true); }},
      {"hostPath volumes",
       [](Value& pod) {
         pod.Set("volumes",
                 Value::List{Value::Map{{"name", "h"}, {"hostPath", Value::Map{{"path", "/"}}}}});
       }},
      {"host ports",
       [](Value& pod) {
         pod.Find("containers")->AsList()[0].Find("ports")->AsList()[0].Set("hostPort", 8080);
       }},
  };
  for (const auto& [expected, apply] : breaks) {
    SetUp();
    apply(*At(Object("Deployment", "customer-abc123-api"), pod_path));
    const auto found = violations();
    ASSERT_EQ(found.size(), 1u) << expected << ": " << ::testing::PrintToString(found);
    EXPECT_NE(found[0].find(expected), std::string::npos) << found[0];
    EXPECT_NE(found[0].find("Deployment/customer-abc123-api"), std::string::npos) << found[0];
  }
}

// The NetworkPolicy evaluator itself, on hand-written policies: isolation only where a policy
// selects, the union of rules, ipBlock except, a namespaceSelector+podSelector peer (AND) versus
// two peers (OR), ports and default policyTypes.
TEST(NetworkPolicyEvaluatorTest, FollowsTheKubernetesRules) {
  using testing::Allowed;
  using testing::Endpoint;
  const auto policies = ParseYamlStream(R"(---
kind: NetworkPolicy
metadata: {name: db, namespace: a}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
    - from:
        - namespaceSelector: {matchLabels: {team: x}}
          podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
      ports: [{port: 5432}]
---
kind: NetworkPolicy
metadata: {name: db-admin, namespace: a}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: admin}}}]
---
kind: NetworkPolicy
metadata: {name: out, namespace: a}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
    - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.0.0/16]}}]
      ports: [{protocol: TCP, port: 8000, endPort: 8100}]
)");
  const Endpoint db{"db", true, "a", {{"role", "db"}}, {}, "10.1.0.1", {}};
  const Endpoint web_x{"web", true, "b", {{"app", "web"}}, {{"team", "x"}}, "10.1.0.2", {}};
  const Endpoint web_y{"web", true, "c", {{"app", "web"}}, {{"team", "y"}}, "10.1.0.3", {}};
  const Endpoint other_x{"other", true, "b", {{"app", "cli"}}, {{"team", "x"}}, "10.1.0.4", {}};
  const Endpoint admin{"admin", true, "a", {{"app", "admin"}}, {}, "10.1.0.5", {}};
  const Endpoint admin_elsewhere{"admin", true, "b", {{"app", "admin"}}, {}, "10.1.0.6", {}};
  const Endpoint web_a{"web", true, "a", {{"app", "web"}}, {}, "10.1.0.7", {}};
  const Endpoint metadata{"metadata", false, "", {}, {}, "169.254.169.254", {}};
  const Endpoint outside{"outside", false, "", {}, {}, "93.184.216.34", {}};
  EXPECT_TRUE(Allowed(policies, web_x, db, 5432));
  EXPECT_FALSE(Allowed(policies, web_x, db, 5433));         // port
  EXPECT_FALSE(Allowed(policies, web_x, db, 5432, "UDP"));  // protocol
  EXPECT_FALSE(Allowed(policies, web_y, db, 5432));         // namespace AND pod
  EXPECT_FALSE(Allowed(policies, other_x, db, 5432));
  EXPECT_TRUE(Allowed(policies, admin, db, 1234));  // union with the second policy, any port
  EXPECT_FALSE(Allowed(policies, admin_elsewhere, db, 1234));  // podSelector alone: own namespace
  EXPECT_TRUE(Allowed(policies, db, admin, 80));               // admin is not isolated
  EXPECT_TRUE(Allowed(policies, web_a, outside, 8050));        // endPort
  EXPECT_FALSE(Allowed(policies, web_a, outside, 8101));
  EXPECT_FALSE(Allowed(policies, web_a, metadata, 8050));  // except
  EXPECT_FALSE(Allowed(policies, web_a, admin, 80));       // egress isolated: only the ipBlock
  EXPECT_TRUE(Allowed(policies, web_x, outside, 8101));    // namespace b has no policy
}

// The rendered policies, evaluated: who may reach what in a tenant's namespace.
class ReachabilityTest : public ::testing::Test {
 protected:
  // Renders with both the provisioner and the chart; checks `expect` on each.
  void ForBoth(const std::vector<std::string>& files,
               const std::function<void(const std::vector<Value>&)>& expect) {
    const auto ours = RenderWithProvisioner(dir_, ValuesArgs(files));
    const auto chart = RenderChart(dir_, ValuesArgs(files));
    ASSERT_EQ(ours.result.exit_code, 0) << ours.result.output;
    ASSERT_EQ(chart.result.exit_code, 0) << chart.result.output;
    {
      SCOPED_TRACE("provisioner");
      Load(ours.objects);
      expect(policies_);
    }
    {
      SCOPED_TRACE("chart");
      Load(chart.objects);
      expect(policies_);
    }
  }

  // The tenant's pods, as the rendered workloads label them, in the rendered namespace.
  void Load(const std::vector<Value>& objects) {
    policies_.clear();
    pods_.clear();
    int next_ip = 10;
    testing::Labels namespace_labels;
    if (const Value* ns = FindObject(objects, "Namespace", "customer-abc123")) {
      for (const auto& [key, value] : ns->FindPath("metadata.labels")->AsMap()) {
        namespace_labels[key] = value.AsString();
      }
    }
    for (const auto& object : objects) {
      const std::string kind = object.Find("kind")->AsString();
      if (kind == "NetworkPolicy") policies_.push_back(object);
      if (kind != "Deployment" && kind != "StatefulSet") continue;
      testing::Endpoint pod;
      pod.ns = "customer-abc123";
      pod.namespace_labels = namespace_labels;
      for (const auto& [key, value] : object.FindPath("spec.template.metadata.labels")->AsMap()) {
        pod.labels[key] = value.AsString();
      }
      pod.name = pod.labels.at("app.kubernetes.io/component");
      pod.ip = "10.244.1." + std::to_string(next_ip++);
      for (const auto& container : object.FindPath("spec.template.spec.containers")->AsList()) {
        for (const auto& port : container.Find("ports")->AsList()) {
          pod.named_ports[port.Find("name")->AsString()] = port.Find("containerPort")->AsInt();
        }
      }
      pods_[pod.name] = pod;
    }
    ASSERT_EQ(pods_.size(), 5u);
  }

  const testing::Endpoint& Pod(const std::string& component) const { return pods_.at(component); }

  static testing::Endpoint PodIn(const std::string& ns, const std::string& name,
                                 testing::Labels labels = {}) {
    return {name + "@" + ns, true, ns, std::move(labels), {}, "10.244.9.9", {}};
  }
  static testing::Endpoint Address(const std::string& ip) {
    return {ip, false, "", {}, {}, ip, {}};
  }

  bool Can(const testing::Endpoint& from, const testing::Endpoint& to, std::int64_t port,
           const std::string& protocol = "TCP") const {
    return testing::Allowed(policies_, from, to, port, protocol);
  }

  TempDir dir_{"provisioner-reachability"};
  std::vector<Value> policies_;
  std::map<std::string, testing::Endpoint> pods_;
};

#define EXPECT_REACHES(from, to, port) \
  EXPECT_TRUE(Can(from, to, port)) << (from).name << " -> " << (to).name << ":" << (port)
#define EXPECT_NOT_REACHES(from, to, port) \
  EXPECT_FALSE(Can(from, to, port)) << (from).name << " -> " << (to).name << ":" << (port)

TEST_F(ReachabilityTest, SeedValues) {
  ForBoth({"seed-example.yaml"}, [&](const std::vector<Value>&) {
    const auto ingress = PodIn("ingress-nginx", "ingress-controller");
    const auto prometheus = PodIn("monitoring", "prometheus");
    const auto stranger = PodIn("default", "stranger");
    const auto other_tenant = PodIn("customer-other", "api",
                                    {{"app.kubernetes.io/component", "api"},
                                     {"app.kubernetes.io/name", "customer-instance"},
                                     {"app.kubernetes.io/instance", "customer-abc123"}});
    const auto debug = [&] {
      auto pod = PodIn("customer-abc123", "debug", {{"run", "debug"}});
      pod.namespace_labels = Pod("api").namespace_labels;
      return pod;
    }();
    const auto& postgres = Pod("postgres");
    const auto& broker = Pod("mosquitto");
    const auto& api = Pod("api");
    const auto& dashboard = Pod("dashboard");
    const auto& exporter = Pod("exporter");
    // PostgreSQL: the API and the exporter, nobody else.
    EXPECT_REACHES(api, postgres, 5432);
    EXPECT_REACHES(exporter, postgres, 5432);
    for (const auto* from :
         {&broker, &dashboard, &debug, &ingress, &prometheus, &stranger, &other_tenant}) {
      EXPECT_NOT_REACHES(*from, postgres, 5432);
    }
    // The broker: anything in the namespace; no device ingress is configured.
    for (const auto* from : {&api, &exporter, &dashboard, &debug}) {
      EXPECT_REACHES(*from, broker, 1883);
      EXPECT_REACHES(*from, broker, 9001);
    }
    for (const auto* from : {&ingress, &prometheus, &stranger, &other_tenant}) {
      EXPECT_NOT_REACHES(*from, broker, 1883);
      EXPECT_NOT_REACHES(*from, broker, 9001);
    }
    // The ingress controller: the dashboard's and the API's ports only.
    EXPECT_REACHES(ingress, dashboard, 80);
    EXPECT_REACHES(ingress, api, 3001);
    EXPECT_NOT_REACHES(ingress, exporter, 9090);
    EXPECT_NOT_REACHES(ingress, api, 5432);
    // The exporter's port: from monitoring only; monitoring reaches nothing else.
    EXPECT_REACHES(prometheus, exporter, 9090);
    EXPECT_NOT_REACHES(prometheus, exporter, 9091);
    for (const auto* from : {&api, &dashboard, &debug, &stranger, &other_tenant, &ingress}) {
      EXPECT_NOT_REACHES(*from, exporter, 9090);
    }
    EXPECT_NOT_REACHES(prometheus, api, 3001);
    EXPECT_NOT_REACHES(prometheus, dashboard, 80);
    // The API: the dashboard and the ingress controller.
    EXPECT_REACHES(dashboard, api, 3001);
    for (const auto* from : {&debug, &stranger, &other_tenant, &broker}) {
      EXPECT_NOT_REACHES(*from, api, 3001);
      EXPECT_NOT_REACHES(*from, dashboard, 80);
    }
    // Egress: DNS and the internet's HTTP(S); never link-local nor the API server.
    const auto dns = PodIn("kube-system", "coredns", {{"k8s-app", "kube-dns"}});
    for (const auto& [name, pod] : pods_) {
      EXPECT_TRUE(Can(pod, dns, 53, "UDP")) << name;
      EXPECT_TRUE(Can(pod, dns, 53, "TCP")) << name;
      EXPECT_REACHES(pod, Address("93.184.216.34"), 443);
      EXPECT_NOT_REACHES(pod, Address("93.184.216.34"), 25);
      EXPECT_NOT_REACHES(pod, Address("169.254.169.254"), 80);
      EXPECT_NOT_REACHES(pod, Address("169.254.169.254"), 443);
      EXPECT_NOT_REACHES(pod, Address("10.96.0.1"), 443);     // the kubernetes Service
      EXPECT_NOT_REACHES(pod, Address("172.18.0.2"), 6443);   // a kubeadm/kind API server
      EXPECT_NOT_REACHES(pod, Address("192.168.49.2"), 443);  // another one
      EXPECT_NOT_REACHES(pod, other_tenant, 3001);
    }
  });
}

TEST_F(ReachabilityTest, DeviceIngressExposedMetricsAndNarrowApiServerRanges) {
  ForBoth({"seed-example.yaml", "custom-resources.yaml"}, [&](const std::vector<Value>&) {
    const auto ingress = PodIn("kube-ingress", "ingress-controller");
    const auto gateway = PodIn("mqtt-gateway", "gateway");
    const auto prometheus = PodIn("monitoring", "prometheus");
    const auto& broker = Pod("mosquitto");
    EXPECT_REACHES(gateway, broker, 11883);
    EXPECT_REACHES(gateway, broker, 19001);
    EXPECT_NOT_REACHES(gateway, Pod("postgres"), 5433);
    EXPECT_NOT_REACHES(gateway, Pod("api"), 8080);
    EXPECT_NOT_REACHES(ingress, broker, 11883);
    // /metrics is routed by the Ingress: the controller reaches the exporter; Prometheus' rule
    // is off.
    EXPECT_REACHES(ingress, Pod("exporter"), 9191);
    EXPECT_REACHES(ingress, Pod("dashboard"), 8081);
    EXPECT_NOT_REACHES(prometheus, Pod("exporter"), 9191);
    EXPECT_REACHES(Pod("api"), Pod("postgres"), 5433);
    for (const auto& [name, pod] : pods_) {
      EXPECT_NOT_REACHES(pod, Address("10.96.0.1"), 443);
      EXPECT_NOT_REACHES(pod, Address("172.18.0.2"), 443);
      EXPECT_NOT_REACHES(pod, Address("169.254.169.254"), 80);
      EXPECT_REACHES(pod, Address("10.20.30.40"), 443);  // private, but not listed
    }
  });
}

// Without the chart's Ingress the controller still reaches the dashboard and the API (an Ingress
// managed elsewhere), never anything else.
TEST_F(ReachabilityTest, WithoutTheChartsIngressTheControllerReachesOnlyDashboardAndApi) {
  ForBoth({"seed-example.yaml", "ingress-off.yaml"}, [&](const std::vector<Value>&) {
    const auto ingress = PodIn("ingress-nginx", "ingress-controller");
    for (const auto& [name, pod] : pods_) {
      for (const auto& [port_name, port] : pod.named_ports) {
        const bool served = (name == "dashboard" && port == 80) || (name == "api" && port == 3001);
        EXPECT_EQ(Can(ingress, pod, port), served) << name << ":" << port;
      }
    }
    EXPECT_REACHES(Pod("dashboard"), Pod("api"), 3001);
    EXPECT_REACHES(PodIn("monitoring", "prometheus"), Pod("exporter"), 9090);
  });
}

}  // namespace
}  // namespace billing::provisioner
