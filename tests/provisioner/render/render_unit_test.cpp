// Pure-library tests of billing::render: value parsing and merging, --set syntax, validation
// messages, YAML emission round trips, apply order and determinism.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "billing/provisioner/customer_spec.h"
#include "billing/provisioner/render.h"
#include "billing/provisioner/value.h"
#include "billing/provisioner/values.h"

namespace billing::provisioner {
namespace {

std::string ReadSourceFile(const std::string& relative) {
  std::ifstream in(std::string(BILLING_SOURCE_DIR) + "/" + relative);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

RenderRequest SeedRequest() {
  RenderRequest request;
  request.chart_values_yaml = ReadSourceFile("manifests/charts/customer-instance/values.yaml");
  request.chart_yaml = ReadSourceFile("manifests/charts/customer-instance/Chart.yaml");
  request.value_files.emplace_back(
      "seed-example.yaml", ReadSourceFile("tests/provisioner/render/values/seed-example.yaml"));
  return request;
}

std::string RenderError(RenderRequest request, const std::vector<std::string>& sets) {
  for (const auto& set : sets) request.set_arguments.push_back(set);
  auto result = Render(request);
  return result.ok() ? "" : result.error();
}

TEST(ValueTest, ParsesScalarsWithYaml11Types) {
  const Value doc = ParseYaml(
      "a: 1\nb: '1'\nc: true\nd: yes\ne: 'yes'\nf: ~\ng: 1.5\nh: text\ni: |\n  block\nj: -7\n");
  EXPECT_EQ(doc.Find("a")->kind(), Value::Kind::kInt);
  EXPECT_EQ(doc.Find("b")->kind(), Value::Kind::kString);
  EXPECT_TRUE(doc.Find("c")->AsBool());
  EXPECT_TRUE(doc.Find("d")->AsBool());
  EXPECT_EQ(doc.Find("e")->AsString(), "yes");
  EXPECT_TRUE(doc.Find("f")->IsNull());
  EXPECT_DOUBLE_EQ(doc.Find("g")->AsFloat(), 1.5);
  EXPECT_EQ(doc.Find("h")->AsString(), "text");
  EXPECT_EQ(doc.Find("i")->AsString(), "block\n");
  EXPECT_EQ(doc.Find("j")->AsInt(), -7);
}

TEST(ValueTest, EmitThenParseRoundTripsAwkwardStrings) {
  const std::vector<std::string> awkward = {"",
                                            "4",
                                            "4Gi",
                                            "true",
                                            "yes",
                                            "No",
                                            "null",
                                            "~",
                                            "0.5",
                                            "1e3",
                                            ": colon",
                                            "a: b",
                                            "# hash",
                                            "trailing ",
                                            " leading",
                                            "quote\"inside",
                                            "back\\slash",
                                            "line\nbreak",
                                            "tab\there",
                                            "Ünïcode — 株式会社 🚀",
                                            "-dash",
                                            "[list]",
                                            "{map}",
                                            "*alias",
                                            "&anchor",
                                            "!tag",
                                            "%percent",
                                            "@at",
                                            "`tick",
                                            "key:",
                                            "multi\nline\n",
                                            "\n",
                                            "a\n\n",
                                            "0x1F",
                                            ".inf"};
  Value document = Value::EmptyMap();
  for (std::size_t i = 0; i < awkward.size(); ++i) {
    document.Set("k" + std::to_string(i), awkward[i]);
    document.Set(awkward[i].empty() ? "empty" : awkward[i], static_cast<int>(i));
  }
  const std::string text = EmitYaml(document);
  const Value parsed = ParseYaml(text);
  EXPECT_EQ(parsed, document) << text;
  for (std::size_t i = 0; i < awkward.size(); ++i) {
    const Value* value = parsed.Find("k" + std::to_string(i));
    ASSERT_NE(value, nullptr);
    ASSERT_TRUE(value->IsString()) << awkward[i];
    EXPECT_EQ(value->AsString(), awkward[i]);
  }
}

TEST(ValueTest, EqualityIgnoresKeyOrderButNotTypes) {
  EXPECT_EQ(ParseYaml("a: 1\nb: x\n"), ParseYaml("b: x\na: 1\n"));
  EXPECT_FALSE(ParseYaml("a: 1\n") == ParseYaml("a: '1'\n"));
  EXPECT_FALSE(ParseYaml("a: [1, 2]\n") == ParseYaml("a: [2, 1]\n"));
  EXPECT_EQ(ParseYaml("a: 1\n"), ParseYaml("a: 1.0\n"));
}

TEST(ValueTest, MergeReplacesScalarsMergesMapsAndNullDeletes) {
  Value base = ParseYaml("a: {b: 1, c: 2}\nd: [1]\ne: x\n");
  MergeInto(base, ParseYaml("a: {c: 3}\nd: [2]\ne: null\n"));
  EXPECT_EQ(base, ParseYaml("a: {b: 1, c: 3}\nd: [2]\n"));
}

TEST(SetArgumentTest, TypesLikeHelmStrvals) {
  auto parsed = ParseSetArgument("a.b=true,c=0,d=010,e=42,f=null,g=,h=FALSE,i=-3,j=4Gi");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed.value(), ParseYaml("a: {b: true}\nc: 0\nd: '010'\ne: 42\nf: null\ng: ''\n"
                                      "h: false\ni: -3\nj: 4Gi\n"));
}

TEST(SetArgumentTest, BackslashEscapesDotsCommasAndEquals) {
  auto parsed = ParseSetArgument(R"(ingress.annotations.cert-manager\.io/cluster-issuer=a\,b\=c)");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  const Value* annotations = parsed.value().FindPath("ingress.annotations");
  ASSERT_NE(annotations, nullptr);
  ASSERT_NE(annotations->Find("cert-manager.io/cluster-issuer"), nullptr);
  EXPECT_EQ(annotations->Find("cert-manager.io/cluster-issuer")->AsString(), "a,b=c");
}

TEST(SetArgumentTest, ValueMayContainEqualsSigns) {
  auto parsed = ParseSetArgument("license.key=eyJh==");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed.value().FindPath("license.key")->AsString(), "eyJh==");
}

TEST(SetArgumentTest, MalformedArgumentsAreNamed) {
  for (const std::string bad :
       {"customer.id", "=x", "a..b=1", "a.=1", "list={a,b}", "x=1,list={a}", "a[0]=1"}) {
    auto parsed = ParseSetArgument(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.error().find(bad), std::string::npos) << parsed.error();
  }
}

TEST(ValuesTextTest, RejectsNonMapsAndBadYamlNamingTheFile) {
  EXPECT_TRUE(ParseValuesText("", "empty.yaml").ok());
  auto list = ParseValuesText("- a\n", "list.yaml");
  ASSERT_FALSE(list.ok());
  EXPECT_NE(list.error().find("list.yaml"), std::string::npos);
  auto broken = ParseValuesText("a: [1\n", "broken.yaml");
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().find("broken.yaml"), std::string::npos);
}

TEST(SpecTest, CustomerIdMustBeAShortDns1123Label) {
  const RenderRequest request = SeedRequest();
  EXPECT_EQ(RenderError(request, {"customer.id=abc-123"}), "");
  EXPECT_EQ(RenderError(request, {"customer.id=" + std::string(kMaxCustomerIdLength, 'a')}), "");
  for (const std::string bad : {"ABC_123", "-abc", "abc-", "a.b", "äbc"}) {
    EXPECT_NE(RenderError(request, {"customer.id=" + bad}).find("customer.id: \"" + bad),
              std::string::npos)
        << bad;
  }
  EXPECT_NE(RenderError(request, {"customer.id=" + std::string(kMaxCustomerIdLength + 1, 'a')})
                .find("longer than 34"),
            std::string::npos);
  EXPECT_NE(RenderError(request, {"customer.id=" + std::string(64, 'a')}).find("customer.id"),
            std::string::npos);
  EXPECT_NE(RenderError(request, {"customer.id="}).find("customer.id: is required"),
            std::string::npos);
}

TEST(SpecTest, EveryInvalidValueIsNamed) {
  const RenderRequest request = SeedRequest();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"license.key=", "license.key"},
      {"license.key=null", "license.key"},
      {"customer.email=nobody", "customer.email"},
      {"domain.base=Not_A_Domain", "domain.base"},
      {"postgres.password=short", "postgres.password"},
      {"postgres.password=has@sign1", "postgres.password"},
      {"postgres.port=70000", "postgres.port"},
      {"api.port=http", "api.port"},
      {"postgres.storageSize=lots", "postgres.storageSize"},
      {"api.resources.limits.cpu=100mm", "api.resources.limits.cpu"},
      {"api.resources.limit.cpu=1", "api.resources.limit"},
      {"mosquitto.websocketPort=1883", "mosquitto.websocketPort"},
      {"mosquitto.sysInterval=0", "mosquitto.sysInterval"},
      {"mosquitto.maxQueuedMessages=1000000", "mosquitto.maxQueuedMessages"},
      {"exporter.sampleInterval=soon", "exporter.sampleInterval"},
      {"ingress.enabled=maybe", "ingress.enabled"},
      {"ingress.exposeMetrics=true", "exporter.basicAuth.password"},
      {"ingress.annotations.bad key=x", "ingress.annotations.bad key"},
      {"ingress.annotations.example\\.com/n=5", "ingress.annotations.example.com/n"},
      {"resourceQuota.pvcs=five", "resourceQuota.pvcs"},
      {"networkPolicy.ingressControllerNamespace=Ingress",
       "networkPolicy.ingressControllerNamespace"},
      {"exporter.serviceMonitor.interval=30 seconds", "exporter.serviceMonitor.interval"},
      {"exporter.image=iotistic/billing-exporter:1", "exporter.image"},
      {"exporter.image.tag=bad tag", "exporter.image.tag"},
      {"postgres.image.repository=Postgres", "postgres.image.repository"},
      {"api.image.pullPolicy=Sometimes", "api.image.pullPolicy"},
      {"mosquitto.image.digest=sha256", "mosquitto.image.digest"},
  };
  for (const auto& [set, path] : cases) {
    const std::string error = RenderError(request, {set});
    EXPECT_TRUE(error.starts_with(path + ":")) << set << " -> " << error;
  }
}

TEST(SpecTest, ExposingMetricsWithBasicAuthIsAccepted) {
  EXPECT_EQ(RenderError(SeedRequest(),
                        {"ingress.exposeMetrics=true", "exporter.basicAuth.password=secret-pw"}),
            "");
}

TEST(RenderTest, ObjectsComeInApplyOrder) {
  RenderRequest request = SeedRequest();
  request.set_arguments = {"exporter.serviceMonitor.enabled=true"};
  auto objects = Render(request);
  ASSERT_TRUE(objects.ok()) << objects.error();
  std::vector<std::string> kinds;
  for (const auto& object : objects.value()) kinds.push_back(object.kind);
  const std::vector<std::string> expected = {
      "Namespace",     "ResourceQuota", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy",
      "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "Secret",        "ConfigMap",
      "ConfigMap",     "Service",       "Service",       "Service",       "Service",
      "Service",       "StatefulSet",   "Deployment",    "Deployment",    "Deployment",
      "Deployment",    "Ingress",       "ServiceMonitor"};
  EXPECT_EQ(kinds, expected);
}

TEST(RenderTest, DisabledPartsAreLeftOut) {
  RenderRequest request = SeedRequest();
  request.set_arguments = {"ingress.enabled=false,networkPolicy.enabled=false",
                           "resourceQuota.enabled=false", "namespace.create=false"};
  auto objects = Render(request);
  ASSERT_TRUE(objects.ok()) << objects.error();
  for (const auto& object : objects.value()) {
    EXPECT_NE(object.kind, "Ingress");
    EXPECT_NE(object.kind, "NetworkPolicy");
    EXPECT_NE(object.kind, "ResourceQuota");
    EXPECT_NE(object.kind, "Namespace");
  }
  EXPECT_EQ(objects.value().size(), 13u);
}

TEST(RenderTest, OutputIsDeterministicAndRoundTrips) {
  auto first = Render(SeedRequest());
  auto second = Render(SeedRequest());
  ASSERT_TRUE(first.ok() && second.ok());
  const std::string text = ToYamlStream(first.value());
  EXPECT_EQ(text, ToYamlStream(second.value()));
  const auto parsed = ParseYamlStream(text);
  ASSERT_EQ(parsed.size(), first.value().size());
  for (std::size_t i = 0; i < parsed.size(); ++i) EXPECT_EQ(parsed[i], first.value()[i].manifest);
}

TEST(RenderTest, LaterLayersWin) {
  RenderRequest request = SeedRequest();
  request.value_files.emplace_back("one.yaml", "api:\n  port: 4000\n");
  request.value_files.emplace_back("two.yaml", "api:\n  port: 4001\n");
  request.set_arguments = {"api.port=4002"};
  auto merged = MergeValues(request);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(merged.value().FindPath("api.port")->AsInt(), 4002);
  request.set_arguments.clear();
  EXPECT_EQ(MergeValues(request).value().FindPath("api.port")->AsInt(), 4001);
  // Untouched chart defaults survive the layers.
  EXPECT_EQ(MergeValues(request).value().FindPath("api.image.repository")->AsString(),
            "iotistic/api");
}

const Value& ContainerOf(const std::vector<KubeObject>& objects, const std::string& name) {
  const auto object = std::find_if(objects.begin(), objects.end(), [&](const KubeObject& o) {
    return o.kind == "Deployment" || o.kind == "StatefulSet" ? o.name == name : false;
  });
  if (object == objects.end()) throw std::runtime_error("no workload " + name);
  return object->manifest.FindPath("spec.template.spec.containers")->AsList().at(0);
}

TEST(RenderTest, ImagesAreRepositoryTagAndPullPolicyWithTheAppVersionAsDefaultTag) {
  RenderRequest request = SeedRequest();
  request.chart_yaml = "name: customer-instance\nversion: 0.1.0\nappVersion: \"7.8.9\"\n";
  request.set_arguments = {"api.image.pullPolicy=Always", "dashboard.image.tag=1.0-rc1",
                           "exporter.image.repository=registry.example.com:5000/iotistic/exp"};
  auto objects = Render(request);
  ASSERT_TRUE(objects.ok()) << objects.error();
  const auto& all = objects.value();
  auto image = [&](const std::string& name) {
    return ContainerOf(all, name).Find("image")->AsString();
  };
  auto policy = [&](const std::string& name) {
    return ContainerOf(all, name).Find("imagePullPolicy")->AsString();
  };
  EXPECT_EQ(image("customer-abc123-exporter"), "registry.example.com:5000/iotistic/exp:7.8.9");
  EXPECT_EQ(image("customer-abc123-api"), "iotistic/api:7.8.9");
  EXPECT_EQ(image("customer-abc123-dashboard"), "iotistic/dashbaoard:1.0-rc1");
  // Upstream images are pinned to a release, never the chart's version or "latest"; the broker
  // is the platform's own image (Mosquitto with the client-id guard).
  EXPECT_EQ(image("customer-abc123-postgres"), "postgres:15.10-alpine");
  EXPECT_EQ(image("customer-abc123-mosquitto"), "iotistic/mosquitto:7.8.9");
  EXPECT_EQ(policy("customer-abc123-api"), "Always");
  EXPECT_EQ(policy("customer-abc123-exporter"), "IfNotPresent");
}

TEST(RenderTest, ExporterRunsWithTheRestrictedSecurityContext) {
  auto objects = Render(SeedRequest());
  ASSERT_TRUE(objects.ok()) << objects.error();
  const auto& all = objects.value();
  const auto exporter = std::find_if(all.begin(), all.end(), [](const KubeObject& o) {
    return o.kind == "Deployment" && o.name == "customer-abc123-exporter";
  });
  ASSERT_NE(exporter, all.end());
  const Value* pod = exporter->manifest.FindPath("spec.template.spec.securityContext");
  ASSERT_NE(pod, nullptr);
  EXPECT_TRUE(pod->Find("runAsNonRoot")->AsBool());
  EXPECT_EQ(pod->Find("runAsUser")->AsInt(), 65532);
  EXPECT_EQ(pod->Find("runAsGroup")->AsInt(), 65532);
  EXPECT_EQ(pod->FindPath("seccompProfile.type")->AsString(), "RuntimeDefault");
  const Value* container = ContainerOf(all, "customer-abc123-exporter").Find("securityContext");
  ASSERT_NE(container, nullptr);
  EXPECT_FALSE(container->Find("allowPrivilegeEscalation")->AsBool());
  EXPECT_TRUE(container->Find("readOnlyRootFilesystem")->AsBool());
  EXPECT_EQ(container->FindPath("capabilities.drop")->AsList(), Value::List{Value("ALL")});
}

TEST(RenderTest, TheBrokersPasswordFileAndAclAreReadableByItsGroupOnly) {
  auto objects = Render(SeedRequest());
  ASSERT_TRUE(objects.ok()) << objects.error();
  const auto broker =
      std::find_if(objects.value().begin(), objects.value().end(), [](const KubeObject& o) {
        return o.kind == "Deployment" && o.name == "customer-abc123-mosquitto";
      });
  ASSERT_NE(broker, objects.value().end());
  const Value* volumes = broker->manifest.FindPath("spec.template.spec.volumes");
  ASSERT_NE(volumes, nullptr);
  const Value* auth = nullptr;
  for (const auto& volume : volumes->AsList()) {
    if (volume.Find("name")->AsString() == "auth") auth = &volume;
  }
  ASSERT_NE(auth, nullptr);
  EXPECT_EQ(auth->FindPath("secret.defaultMode")->AsInt(), 0440);
  EXPECT_EQ(broker->manifest.FindPath("spec.template.spec.securityContext.fsGroup")->AsInt(), 1883);
}

TEST(RenderTest, EmailAndCompanyAreOptional) {
  EXPECT_EQ(RenderError(SeedRequest(), {"customer.email=", "customer.companyName="}), "");
}

TEST(RenderTest, AnEmptyPasswordIsGeneratedOnlyWhenTheCallerAllowsIt) {
  // Without a generator (the provisioner service) an empty password is refused by name ...
  EXPECT_TRUE(RenderError(SeedRequest(), {"postgres.password="}).starts_with("postgres.password:"));
  // ... with one (`provisioner render`), the generated password goes where a given one would.
  RenderRequest request = SeedRequest();
  request.set_arguments = {"postgres.password="};
  request.options.generate_password = [] { return std::string("Gener4tedPassw0rd"); };
  auto objects = Render(request);
  ASSERT_TRUE(objects.ok()) << objects.error();
  const auto secret = std::find_if(objects.value().begin(), objects.value().end(),
                                   [](const KubeObject& o) { return o.kind == "Secret"; });
  ASSERT_NE(secret, objects.value().end());
  EXPECT_EQ(secret->manifest.FindPath("data.POSTGRES_PASSWORD")->AsString(),
            "R2VuZXI0dGVkUGFzc3cwcmQ=");
  // A given password is used as is, the generator never called.
  request.set_arguments.clear();
  request.options.generate_password = []() -> std::string { throw std::logic_error("called"); };
  EXPECT_TRUE(Render(request).ok());
}

TEST(RenderTest, SecretHoldsBase64OfTheValues) {
  RenderRequest request = SeedRequest();
  request.set_arguments = {"license.key=Man"};  // "Man" is base64's textbook example: TWFu
  auto objects = Render(request);
  ASSERT_TRUE(objects.ok());
  const auto secret = std::find_if(objects.value().begin(), objects.value().end(),
                                   [](const KubeObject& o) { return o.kind == "Secret"; });
  ASSERT_NE(secret, objects.value().end());
  EXPECT_EQ(secret->name, "customer-abc123-secrets");
  EXPECT_EQ(secret->manifest.FindPath("data.IOTISTIC_LICENSE_KEY")->AsString(), "TWFu");
  EXPECT_EQ(secret->manifest.FindPath("data.POSTGRES_USER")->AsString(), "aW90aXN0aWM=");
}

TEST(SyntaxTest, QuantitiesLabelsAndNames) {
  for (const std::string good : {"1", "500m", "4Gi", "1.5", ".5", "1e3", "+2Ki", "10M"}) {
    EXPECT_TRUE(IsQuantity(good)) << good;
  }
  for (const std::string bad : {"", "100mm", "4 Gi", "Gi", "1.2.3", "4gi"}) {
    EXPECT_FALSE(IsQuantity(bad)) << bad;
  }
  EXPECT_TRUE(IsQualifiedName("app.kubernetes.io/name"));
  EXPECT_TRUE(IsQualifiedName("billing/customer"));
  EXPECT_FALSE(IsQualifiedName("Bad_Prefix/name"));
  EXPECT_FALSE(IsQualifiedName("a/" + std::string(64, 'x')));
  EXPECT_TRUE(IsDns1123Subdomain("abc123.iotistic.cloud"));
  EXPECT_FALSE(IsDns1123Label(std::string(64, 'a')));
}

}  // namespace
}  // namespace billing::provisioner
