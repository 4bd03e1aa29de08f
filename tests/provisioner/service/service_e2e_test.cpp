// `provisioner serve` end to end: a real PostgreSQL store, the Kubernetes API test double
// (tests/support/kube_api_double.h) in place of a cluster, the real binary over HTTP.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "billing/common/base64.h"
#include "billing/provisioner/value.h"
#include "identity.h"
#include "kube_api_double.h"
#include "secret_box.h"
#include "testbed.h"
#include "value_json.h"

namespace billing::testbed {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kAdminToken[] = "test-admin-token-0123456789";
constexpr char kDomain[] = "iot.example.com";
constexpr char kPassword[] = "correct horse battery staple 42";

const std::vector<std::string>& WorkloadNames() {
  static const std::vector<std::string> names = {"postgres", "mosquitto", "api", "dashboard",
                                                 "exporter"};
  return names;
}

std::string Header(const HttpResponse& response, const std::string& name) {
  const auto it = response.headers.find(name);
  return it == response.headers.end() ? "" : it->second;
}

class ServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    postgres_ = std::make_unique<PostgresServer>();
    keys_ = std::make_unique<TempDir>("provisioner-keys");
    const auto key = keys_->path() / "signing-key.pem";
    const auto generated =
        RunCommand({"openssl", "genpkey", "-algorithm", "ed25519", "-out", key.string()});
    ASSERT_EQ(generated.exit_code, 0) << generated.output;
    const auto pub = RunCommand({"openssl", "pkey", "-in", key.string(), "-pubout"});
    ASSERT_EQ(pub.exit_code, 0) << pub.output;
    public_key_pem_ = pub.output;
    std::ifstream in(key);
    signing_key_pem_.assign(std::istreambuf_iterator<char>(in), {});
    encryption_key_ = WriteEncryptionKey(keys_->path() / "encryption.key");
    token_key_ = WriteEncryptionKey(keys_->path() / "token.key");
  }

  /// A new key file (64 hex digits, as the docs say to make one); returns its path.
  static std::string WriteEncryptionKey(const std::filesystem::path& path) {
    const auto made = RunCommand({"openssl", "rand", "-hex", "-out", path.string(), "32"});
    EXPECT_EQ(made.exit_code, 0) << made.output;
    return path.string();
  }
  static std::string KeyIdOfFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    const std::string contents((std::istreambuf_iterator<char>(in)), {});
    const auto key = provisioner::SecretBox::ParseKey(contents);
    EXPECT_TRUE(key.ok()) << key.error();
    return key.ok() ? provisioner::SecretBox::KeyId(key.value()) : "";
  }
  static void TearDownTestSuite() {
    postgres_.reset();
    keys_.reset();
  }

  void SetUp() override {
    static int counter = 0;
    database_ = "provisioner_" + std::to_string(++counter);
    postgres_->CreateDatabase(database_);
    dir_ = std::make_unique<TempDir>("provisioner-test");
    kube_ = std::make_unique<KubeApiDouble>();
    kube_->WriteKubeconfig(dir_->path() / "kubeconfig");
    // As strict as a cluster can be made here: the provisioner's ClusterRole is enforced, and
    // every body it applies is checked against the Kubernetes schemas at the end of the test.
    kube_->EnforceRbac(std::string(BILLING_SOURCE_DIR) + "/manifests/provisioner/20-rbac.yaml");
    kube_->RecordAppliedBodies(dir_->path() / "applied.yaml");
    port_ = FreePort();
  }

  void TearDown() override {
    EXPECT_EQ(kube_->RbacDenials(), std::vector<std::string>{})
        << "requests that manifests/provisioner/20-rbac.yaml does not allow";
    if (std::filesystem::file_size(dir_->path() / "applied.yaml") > 0) {
      const char* shared = std::getenv("BILLING_SHARED_DIR");
      const std::string schemas =
          std::string(shared != nullptr && *shared ? shared : BILLING_DEFAULT_SHARED_DIR) +
          "/k8s-schemas";
      const auto checked = RunCommand(
          {SYSTEM_PYTHON,
           std::string(BILLING_SOURCE_DIR) + "/tests/provisioner/render/validate_manifests.py",
           "objects", schemas, (dir_->path() / "applied.yaml").string()});
      EXPECT_EQ(checked.exit_code, 0) << "applied bodies that fail the schemas:\n"
                                      << checked.output;
    }
    if (HasFailure()) {
      if (provisioner_) std::cerr << "provisioner log:\n" << provisioner_->Log();
      std::cerr << "Kubernetes API requests:\n";
      for (const auto& r : kube_->Requests()) {
        std::cerr << "  " << r.method << " " << r.path << " -> " << r.status << "\n";
      }
    }
    provisioner_.reset();
  }

  std::vector<std::pair<std::string, std::string>> Env() const {
    return {{"PROVISIONER_ADMIN_TOKEN", kAdminToken},
            {"DATABASE_URL", postgres_->Url(database_)},
            {"LICENSE_SIGNING_KEY_FILE", (keys_->path() / "signing-key.pem").string()},
            {"PROVISIONER_ENCRYPTION_KEY_FILE", encryption_key_},
            {"PROVISIONER_TOKEN_KEY_FILE", token_key_},
            {"PROVISIONER_DOMAIN_BASE", kDomain},
            {"KUBECONFIG", (dir_->path() / "kubeconfig").string()},
            {"PROVISIONER_CHART_DIR",
             std::string(BILLING_SOURCE_DIR) + "/manifests/charts/customer-instance"},
            {"PROVISIONER_POLL_INTERVAL", "200ms"},
            {"PROVISIONER_RESYNC_INTERVAL", "1s"},
            {"PROVISIONER_FAILURE_BACKOFF", "300ms"},
            {"PROVISIONER_FAILURE_BACKOFF_MAX", "1s"},
            {"PROVISIONER_SIGNUP_BURST", "100"}};
  }

  void StartProvisioner(std::vector<std::pair<std::string, std::string>> extra_env = {}) {
    auto env = Env();
    for (auto& entry : extra_env) {
      std::erase_if(env, [&](const auto& e) { return e.first == entry.first; });
      env.push_back(std::move(entry));
    }
    static int starts = 0;
    provisioner_ = std::make_unique<Process>(Process::Options{
        {PROVISIONER_PATH, "serve", "--listen", "127.0.0.1:" + std::to_string(port_),
         "--health-listen", "127.0.0.1:" + std::to_string(FreePort())},
        env,
        {"PROMETHEUS_URL"},
        dir_->path() / ("provisioner-" + std::to_string(++starts) + ".log"),
        std::nullopt});
    ASSERT_TRUE(WaitFor(
        [&] { return !provisioner_->Running() || HttpGet(Url("/healthz")).status == 200; }, 20s));
    ASSERT_TRUE(provisioner_->Running()) << provisioner_->Log();
  }

  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  HttpResponse Post(const std::string& path, const std::string& body, bool admin = false) {
    std::vector<std::string> headers = {"Content-Type: application/json", "Expect:"};
    if (admin) headers.push_back(std::string("Authorization: Bearer ") + kAdminToken);
    return HttpRequest("POST", Url(path), body, headers);
  }

  static std::string AdminHeader() { return std::string("Authorization: Bearer ") + kAdminToken; }

  HttpResponse Admin(const std::string& method, const std::string& path) {
    return HttpRequest(method, Url(path), "",
                       {std::string("Authorization: Bearer ") + kAdminToken});
  }

  static json SignupBody(const std::string& email, const std::string& company,
                         const std::string& password = kPassword) {
    return {{"email", email}, {"password", password}, {"company_name", company}};
  }

  std::string Signup(const std::string& email, const std::string& company) {
    const auto response = Post("/api/customers/signup", SignupBody(email, company).dump(), true);
    EXPECT_EQ(response.status, 201) << response.body << response.error
                                    << (provisioner_->Running() ? "" : " (provisioner exited)");
    const auto body = json::parse(response.body, nullptr, false);
    if (body.is_discarded() || !body.contains("customer_id")) return "";
    return body["customer_id"].get<std::string>();
  }

  json Status(const std::string& id) {
    const auto response = Admin("GET", "/api/customers/" + id + "/deployment/status");
    if (response.status != 200) return json{{"http_status", response.status}};
    return json::parse(response.body);
  }

  bool WaitForPhase(const std::string& id, const std::string& phase,
                    std::chrono::milliseconds timeout = 30s) {
    return WaitFor([&] { return Status(id).value("phase", "") == phase; }, timeout, 50ms);
  }

  static std::string Namespace(const std::string& id) { return "customer-" + id; }

  bool AllWorkloadsApplied(const std::string& id) {
    for (const auto& name : WorkloadNames()) {
      const auto kind = name == "postgres" ? "StatefulSet" : "Deployment";
      if (!kube_->Object("apps/v1", kind, Namespace(id), "customer-" + id + "-" + name)) {
        return false;
      }
    }
    return true;
  }

  /// Whether every workload is applied with `replicas` (spec.replicas; absent counts as 1).
  bool AllWorkloadsAt(const std::string& id, int replicas) {
    for (const auto& name : WorkloadNames()) {
      const auto kind = name == "postgres" ? "StatefulSet" : "Deployment";
      const auto live =
          kube_->Object("apps/v1", kind, Namespace(id), "customer-" + id + "-" + name);
      if (!live || (*live)["spec"].value("replicas", 1) != replicas) return false;
    }
    return true;
  }

  std::string SecretValue(const std::string& id, const std::string& key) {
    const auto secret = kube_->Object("v1", "Secret", Namespace(id), "customer-" + id + "-secrets");
    if (!secret) return "";
    return common::Base64Decode((*secret)["data"][key].get<std::string>()).value_or("");
  }

  /// The broker password file's hash for `user` ("user:$7$..." lines of MOSQUITTO_PASSWORDS).
  std::string PasswordHash(const std::string& id, const std::string& user) {
    std::istringstream lines(SecretValue(id, "MOSQUITTO_PASSWORDS"));
    for (std::string line; std::getline(lines, line);) {
      if (line.starts_with(user + ":")) return line.substr(user.size() + 1);
    }
    return "";
  }

  /// What `provisioner render` prints for this customer, as JSON objects.
  /// `extra` goes over the customer's values (an upgrade's).
  std::vector<json> Rendered(
      const std::string& id, const std::string& email, const std::string& company,
      const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) {
    provisioner::Value values = provisioner::FromJson(nlohmann::ordered_json{
        {"customer", {{"id", id}, {"email", email}, {"companyName", company}}},
        {"license", {{"key", SecretValue(id, "IOTISTIC_LICENSE_KEY")}}},
        {"domain", {{"base", kDomain}}},
        {"postgres", {{"password", SecretValue(id, "POSTGRES_PASSWORD")}}},
        {"mosquitto",
         {{"auth",
           {{"exporter",
             {{"password", SecretValue(id, "MQTT_EXPORTER_PASSWORD")},
              {"passwordHash", PasswordHash(id, SecretValue(id, "MQTT_EXPORTER_USERNAME"))}}},
            {"device",
             {{"password", SecretValue(id, "MQTT_DEVICE_PASSWORD")},
              {"passwordHash", PasswordHash(id, SecretValue(id, "MQTT_DEVICE_USERNAME"))}}}}}}},
        {"exporter",
         {{"basicAuth", {{"password", SecretValue(id, "EXPORTER_BASIC_AUTH_PASSWORD")}}}}},
        {"namespace", {{"create", true}}}});
    provisioner::MergeInto(values, provisioner::FromJson(extra));
    const auto file = dir_->path() / ("values-" + id + ".yaml");
    std::ofstream(file) << provisioner::EmitYaml(values);
    const auto rendered = RunCommand({PROVISIONER_PATH, "render", "-f", file.string()});
    EXPECT_EQ(rendered.exit_code, 0) << rendered.output;
    std::vector<json> objects;
    for (const auto& document : provisioner::ParseYamlStream(rendered.output)) {
      if (!document.IsNull()) objects.push_back(json::parse(provisioner::ToJson(document).dump()));
    }
    return objects;
  }

  /// The live object without what the server adds (identity, versions, status).
  static json Applied(json live) {
    for (const char* field : {"uid", "resourceVersion", "generation", "creationTimestamp",
                              "managedFields", "deletionTimestamp"}) {
      live["metadata"].erase(field);
    }
    live.erase("status");
    return live;
  }

  void ExpectClusterHoldsExactly(const std::vector<json>& rendered, const std::string& id) {
    ASSERT_FALSE(rendered.empty());
    std::size_t namespaced = 0;
    for (const auto& object : rendered) {
      const auto kind = object["kind"].get<std::string>();
      const auto name = object["metadata"]["name"].get<std::string>();
      const auto ns = object["metadata"].value("namespace", "");
      if (!ns.empty()) ++namespaced;
      const auto live = kube_->Object(object["apiVersion"], kind, ns, name);
      ASSERT_TRUE(live.has_value()) << kind << " " << name << " was not applied";
      EXPECT_EQ(Applied(*live), object) << kind << " " << name;
    }
    EXPECT_EQ(kube_->ObjectsIn(Namespace(id)).size(), namespaced)
        << "objects applied that render does not produce";
  }

  /// DELETE requests for the Namespace itself (not for objects in it, whose paths contain it).
  int NamespaceGets(const std::string& id) {
    const auto requests = kube_->Requests();
    return static_cast<int>(std::count_if(requests.begin(), requests.end(), [&](const auto& r) {
      return r.method == "GET" && r.path == "/api/v1/namespaces/" + Namespace(id);
    }));
  }
  int NamespaceDeletes(const std::string& id) {
    const auto requests = kube_->Requests();
    return static_cast<int>(std::count_if(requests.begin(), requests.end(), [&](const auto& r) {
      return r.method == "DELETE" && r.path == "/api/v1/namespaces/" + Namespace(id);
    }));
  }

  /// Every table of the provisioner's database as pg_dump writes it (schema and data).
  std::string Dump() const {
    const auto dumped = RunCommand({"pg_dump", "--dbname=" + postgres_->Url(database_)});
    EXPECT_EQ(dumped.exit_code, 0) << dumped.output;
    EXPECT_NE(dumped.output.find("COPY public.deployments"), std::string::npos) << dumped.output;
    // Without the random token of pg_dump's \restrict lines, so that two dumps compare.
    std::string dump;
    std::istringstream lines(dumped.output);
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with("\\restrict ") && !line.starts_with("\\unrestrict ")) {
        dump += line + "\n";
      }
    }
    return dump;
  }

  std::string StoredChartValues() const {
    return postgres_->Psql(
        "SELECT customer_id, chart_values::text FROM deployments ORDER BY customer_id", database_);
  }

  static std::size_t Occurrences(const std::string& text, const std::string& part) {
    std::size_t count = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
      ++count;
    }
    return count;
  }

  /// The tenant's secrets as its stack received them (the Secret in the cluster). The license
  /// must verify: a sealed value rendered by mistake would not.
  std::vector<std::string> TenantSecrets(const std::string& id) {
    const auto license = SecretValue(id, "IOTISTIC_LICENSE_KEY");
    const auto claims = provisioner::VerifyLicense(license, public_key_pem_);
    EXPECT_TRUE(claims.ok()) << id << ": " << claims.error();
    std::vector<std::string> secrets = {license};
    for (const char* key : {"POSTGRES_PASSWORD", "MQTT_EXPORTER_PASSWORD", "MQTT_DEVICE_PASSWORD",
                            "EXPORTER_BASIC_AUTH_PASSWORD"}) {
      const auto password = SecretValue(id, key);
      EXPECT_GE(password.size(), 16u) << id << " " << key;
      EXPECT_FALSE(provisioner::SecretBox::IsSealed(password)) << id << " " << key;
      secrets.push_back(password);
    }
    // The broker's password file: the users' Mosquitto hashes.
    const auto password_file = SecretValue(id, "MOSQUITTO_PASSWORDS");
    for (std::size_t line = 0; line < password_file.size();) {
      auto end = password_file.find('\n', line);
      if (end == std::string::npos) end = password_file.size();
      const auto colon = password_file.find(':', line);
      if (colon < end) secrets.push_back(password_file.substr(colon + 1, end - colon - 1));
      line = end + 1;
    }
    EXPECT_EQ(secrets.size(), 7u) << id << ": " << password_file;
    return secrets;
  }

  /// Every object of the customer in the cluster, as applied (no server fields), one JSON text.
  std::string ClusterObjects(const std::string& id) {
    std::string text;
    for (const auto& object : kube_->ObjectsIn(Namespace(id)))
      text += Applied(object).dump() + "\n";
    return text;
  }

  /// Runs `provisioner rotate-encryption-key` with the test's database.
  CommandResult Rotate(const std::string& key_file, const std::string& previous_files) {
    return RunCommand({PROVISIONER_PATH, "rotate-encryption-key"},
                      {{"DATABASE_URL", postgres_->Url(database_)},
                       {"PROVISIONER_ENCRYPTION_KEY_FILE", key_file},
                       {"PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES", previous_files}});
  }

  /// Waits until every customer in `ids` was applied again (after a restart with
  /// PROVISIONER_REAPPLY_INTERVAL=1s).
  bool WaitForReapply(const std::vector<std::string>& ids) {
    std::map<std::string, int> before;
    for (const auto& id : ids) before[id] = kube_->CountRequests("PATCH", Namespace(id));
    return WaitFor(
        [&] {
          for (const auto& id : ids) {
            if (kube_->CountRequests("PATCH", Namespace(id)) <= before[id]) return false;
          }
          return true;
        },
        30s);
  }

  static std::unique_ptr<PostgresServer> postgres_;
  static std::unique_ptr<TempDir> keys_;
  static std::string public_key_pem_;
  static std::string signing_key_pem_;
  static std::string encryption_key_;
  static std::string token_key_;
  std::string database_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<KubeApiDouble> kube_;
  std::unique_ptr<Process> provisioner_;
  int port_ = 0;
};

std::unique_ptr<PostgresServer> ServiceTest::postgres_;
std::unique_ptr<TempDir> ServiceTest::keys_;
std::string ServiceTest::public_key_pem_;
std::string ServiceTest::signing_key_pem_;
std::string ServiceTest::encryption_key_;
std::string ServiceTest::token_key_;

TEST_F(ServiceTest, SignupDeploysWhatRenderGivesThenReadyThenSuspendedRestoredAndPurged) {
  StartProvisioner();
  const std::string email = "ops@acme.example";
  const std::string company = "Acme Sensors GmbH";
  const auto id = Signup(email, company);
  ASSERT_FALSE(id.empty());
  EXPECT_TRUE(id.starts_with("acme-sensors-gmb-")) << id;

  ASSERT_TRUE(WaitForPhase(id, "Deploying")) << Status(id).dump();
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 20s));
  ExpectClusterHoldsExactly(Rendered(id, email, company), id);
  EXPECT_EQ(Status(id)["phase"], "Deploying") << "ready before any workload was";
  for (const auto& request : kube_->Requests()) {
    if (request.method != "PATCH") continue;
    EXPECT_EQ(request.content_type, "application/apply-patch+yaml") << request.path;
    EXPECT_NE(request.query.find("fieldManager="), std::string::npos) << request.query;
  }
  // Namespace first.
  const auto requests = kube_->Requests();
  const auto first_patch = std::find_if(requests.begin(), requests.end(),
                                        [](const auto& r) { return r.method == "PATCH"; });
  ASSERT_NE(first_patch, requests.end());
  EXPECT_EQ(first_patch->path, "/api/v1/namespaces/" + Namespace(id));

  // Generated per customer: the broker's users (a password and its $7$ hash each) and /metrics
  // basic auth, which the exporter's environment and the ServiceMonitor's secret refs use.
  EXPECT_GE(SecretValue(id, "EXPORTER_BASIC_AUTH_PASSWORD").size(), 32u);
  EXPECT_EQ(SecretValue(id, "EXPORTER_BASIC_AUTH_USERNAME"), "prometheus");
  EXPECT_GE(SecretValue(id, "MQTT_EXPORTER_PASSWORD").size(), 32u);
  EXPECT_GE(SecretValue(id, "MQTT_DEVICE_PASSWORD").size(), 32u);
  EXPECT_NE(SecretValue(id, "MQTT_EXPORTER_PASSWORD"), SecretValue(id, "MQTT_DEVICE_PASSWORD"));
  EXPECT_TRUE(PasswordHash(id, "billing-exporter").starts_with("$7$101$"));
  EXPECT_TRUE(PasswordHash(id, "device").starts_with("$7$101$"));
  const auto exporter =
      kube_->Object("apps/v1", "Deployment", Namespace(id), "customer-" + id + "-exporter");
  ASSERT_TRUE(exporter.has_value());
  std::set<std::string> exporter_env;
  for (const auto& variable : (*exporter)["spec"]["template"]["spec"]["containers"][0]["env"]) {
    exporter_env.insert(variable["name"].get<std::string>());
  }
  for (const char* name : {"EXPORTER_BASIC_AUTH_USERNAME", "EXPORTER_BASIC_AUTH_PASSWORD",
                           "MQTT_USERNAME", "MQTT_PASSWORD", "MQTT_CLIENT_ID"}) {
    EXPECT_EQ(exporter_env.count(name), 1u) << name;
  }

  // The license is a JWT for this customer, signed with the configured key.
  const auto claims =
      provisioner::VerifyLicense(SecretValue(id, "IOTISTIC_LICENSE_KEY"), public_key_pem_);
  ASSERT_TRUE(claims.ok()) << claims.error();
  EXPECT_EQ(claims.value().customer_id, id);
  EXPECT_GT(claims.value().expires_at, claims.value().issued_at);

  kube_->MarkWorkloadsReady(Namespace(id));
  ASSERT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();
  const auto ready = Status(id);
  for (const auto& name : WorkloadNames()) {
    EXPECT_EQ(ready["components"][name]["ready"], true) << name << ": " << ready.dump();
  }

  // A delete first suspends: every workload at zero, the namespace and its volume kept.
  const std::string deployment = "/api/customers/" + id + "/deployment";
  const auto deleted = Admin("DELETE", deployment);
  ASSERT_EQ(deleted.status, 202) << deleted.body;
  const auto suspension = json::parse(deleted.body);
  EXPECT_EQ(suspension["phase"], "Suspended");
  const std::string purge_after = suspension.value("purge_after", "");
  EXPECT_FALSE(purge_after.empty()) << deleted.body;
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsAt(id, 0); }, 20s)) << Status(id).dump();
  EXPECT_EQ(Status(id)["phase"], "Suspended");
  EXPECT_EQ(Status(id)["purge_after"], purge_after);
  kube_->MarkWorkloadsReady(Namespace(id));  // the controllers stopped every pod
  ASSERT_TRUE(WaitFor(
      [&] { return Status(id).value("message", "").starts_with("suspended: every workload"); },
      20s))
      << Status(id).dump();
  EXPECT_TRUE(kube_->NamespaceExists(Namespace(id)));
  EXPECT_EQ(NamespaceDeletes(id), 0);
  EXPECT_TRUE(
      kube_->Object("apps/v1", "StatefulSet", Namespace(id), "customer-" + id + "-postgres"));
  const auto again = Admin("DELETE", deployment);
  EXPECT_EQ(again.status, 202) << "idempotent";
  EXPECT_EQ(json::parse(again.body).value("purge_after", ""), purge_after) << "not extended";
  EXPECT_EQ(
      Post(deployment + "/upgrade", R"({"values": {"ingress": {"enabled": false}}})", true).status,
      409);

  // Restored with one call: the stack as it was.
  ASSERT_EQ(Post(deployment + "/restore", "", true).status, 202);
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsAt(id, 1); }, 20s)) << Status(id).dump();
  kube_->MarkWorkloadsReady(Namespace(id));
  ASSERT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();
  EXPECT_FALSE(Status(id).contains("purge_after"));

  // Only a suspended deployment is purged, and the purge deletes the namespace for good.
  const auto unsuspended = Admin("DELETE", deployment + "?purge=true");
  EXPECT_EQ(unsuspended.status, 409) << unsuspended.body;
  EXPECT_EQ(Admin("DELETE", deployment + "?purge=yes").status, 400);
  ASSERT_EQ(Admin("DELETE", deployment).status, 202);
  ASSERT_EQ(Admin("DELETE", deployment + "?purge=true").status, 202);
  ASSERT_TRUE(WaitForPhase(id, "Deleted")) << Status(id).dump();
  EXPECT_FALSE(kube_->NamespaceExists(Namespace(id)));
  EXPECT_EQ(Admin("DELETE", deployment + "?purge=true").status, 202) << "idempotent";
  EXPECT_EQ(Admin("DELETE", deployment).status, 202) << "idempotent";
  EXPECT_EQ(Post(deployment + "/restore", "", true).status, 409) << "the data is gone";
}

TEST_F(ServiceTest, ASuspendedDeploymentIsPurgedWhenItsRetentionEnds) {
  StartProvisioner({{"PROVISIONER_DELETE_RETENTION", "2s"}});
  const auto id = Signup("gone@retention.example", "Retention");
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 20s));
  ASSERT_EQ(Admin("DELETE", "/api/customers/" + id + "/deployment").status, 202);
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsAt(id, 0); }, 20s)) << Status(id).dump();
  EXPECT_TRUE(kube_->NamespaceExists(Namespace(id)));
  ASSERT_TRUE(WaitForPhase(id, "Deleted")) << Status(id).dump();
  EXPECT_FALSE(kube_->NamespaceExists(Namespace(id)));
  EXPECT_NE(provisioner_->Log().find("suspended past its retention"), std::string::npos);
}

TEST_F(ServiceTest, AKubernetesApiThatStopsAnsweringFailsStepsByTheirDeadlineAndAllRecovers) {
  StartProvisioner({{"PROVISIONER_STEP_TIMEOUT", "2s"}});
  kube_->HoldRequests("", 0);  // the API server accepts connections and answers nothing
  const auto id = Signup("ops@frozen-kube.example", "Frozen Kube");
  ASSERT_FALSE(id.empty());
  // The step gives up by its deadline, whatever the retries left, and says why.
  ASSERT_TRUE(WaitFor([&] { return Status(id).value("phase", "") == "Failed"; }, 30s))
      << Status(id).dump();
  EXPECT_NE(Status(id).value("message", "").find("Kubernetes API unreachable"), std::string::npos)
      << Status(id).dump();
  // The API and the probes are untouched: they never wait for Kubernetes.
  EXPECT_EQ(HttpGet(Url("/healthz"), {}, 1s).status, 200);
  const auto second = Signup("ops@second-kube.example", "Second Kube");
  ASSERT_FALSE(second.empty());

  // The API server answers again: both customers reach Ready by themselves.
  kube_->ReleaseHeldRequests();
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id) && AllWorkloadsApplied(second); }, 30s))
      << Status(id).dump();
  kube_->MarkWorkloadsReady(Namespace(id));
  kube_->MarkWorkloadsReady(Namespace(second));
  EXPECT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();
  EXPECT_TRUE(WaitForPhase(second, "Ready")) << Status(second).dump();
}

TEST_F(ServiceTest, DeletionWaitsForTheNamespaceToTerminate) {
  StartProvisioner();
  const auto id = Signup("slow@delete.example", "Slow Delete");
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 20s));
  // The namespace stays Terminating until the test says otherwise.
  kube_->HoldNamespaceFinalization(true);
  ASSERT_EQ(Admin("DELETE", "/api/customers/" + id + "/deployment").status, 202);
  ASSERT_EQ(Admin("DELETE", "/api/customers/" + id + "/deployment?purge=true").status, 202);
  ASSERT_TRUE(WaitFor([&] { return NamespaceDeletes(id) > 0; }, 10s));
  // Two looks at the Terminating namespace after the DELETE: the provisioner has checked and
  // keeps waiting.
  const int gets_at_delete = NamespaceGets(id);
  ASSERT_TRUE(WaitFor([&] { return NamespaceGets(id) >= gets_at_delete + 2; }, 30s));
  EXPECT_EQ(Status(id)["phase"], "Deleting");
  EXPECT_TRUE(kube_->NamespaceExists(Namespace(id)));
  kube_->HoldNamespaceFinalization(false);
  ASSERT_TRUE(WaitForPhase(id, "Deleted")) << Status(id).dump();
  EXPECT_FALSE(kube_->NamespaceExists(Namespace(id)));
}

TEST_F(ServiceTest, KilledDuringDeploymentCompletesAfterRestartWithoutChangingTheResult) {
  // Three applies go through, the fourth is held: the kill comes mid-deployment, whatever the
  // machine's speed.
  kube_->HoldRequests("PATCH", 3);
  StartProvisioner({{"PROVISIONER_KUBE_MAX_ATTEMPTS", "2"}});
  const std::string email = "crash@restart.example";
  const std::string company = "Crash Restart";
  const auto id = Signup(email, company);
  ASSERT_TRUE(WaitFor([&] { return kube_->HeldRequests() >= 1; }, 20s));
  EXPECT_EQ(kube_->CountRequests("PATCH", Namespace(id)), 3);
  ASSERT_FALSE(AllWorkloadsApplied(id)) << "the deployment finished before the kill";
  provisioner_->Stop(SIGKILL);
  provisioner_.reset();

  kube_->ReleaseHeldRequests();  // the dead client's apply lands now, as on a real API server
  StartProvisioner();
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 30s)) << Status(id).dump();
  ASSERT_TRUE(WaitForPhase(id, "Deploying")) << Status(id).dump();
  kube_->MarkWorkloadsReady(Namespace(id));
  ASSERT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();

  const auto rendered = Rendered(id, email, company);
  ExpectClusterHoldsExactly(rendered, id);
  // Applied again after the restart, but never changed: every object was written once.
  for (const auto& object : rendered) {
    const auto ns = object["metadata"].value("namespace", "");
    const auto kind = object["kind"].get<std::string>();
    const auto name = object["metadata"]["name"].get<std::string>();
    EXPECT_EQ(kube_->Object(object["apiVersion"], kind, ns, name)->at("metadata")["generation"], 1)
        << kind << " " << name;
    // Workloads also got their status written by the test.
    const int status_writes = kind == "Deployment" || kind == "StatefulSet" ? 1 : 0;
    EXPECT_EQ(kube_->WriteCount(object["apiVersion"], kind, ns, name), 1 + status_writes)
        << kind << " " << name;
  }
}

TEST_F(ServiceTest, TwentyConcurrentSignupsAllReachReady) {
  StartProvisioner();
  constexpr int kCustomers = 20;
  std::vector<std::future<HttpResponse>> signups;
  for (int i = 0; i < kCustomers; ++i) {
    signups.push_back(std::async(std::launch::async, [this, i] {
      return Post("/api/customers/signup",
                  SignupBody("user" + std::to_string(i) + "@fleet.example", "Fleet").dump(), true);
    }));
  }
  std::set<std::string> ids;
  for (auto& signup : signups) {
    const auto response = signup.get();
    ASSERT_EQ(response.status, 201) << response.body;
    ids.insert(json::parse(response.body)["customer_id"].get<std::string>());
  }
  ASSERT_EQ(ids.size(), static_cast<std::size_t>(kCustomers)) << "customer ids are not unique";

  std::set<std::string> marked;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& id : ids) {
          if (!marked.count(id) && AllWorkloadsApplied(id)) {
            kube_->MarkWorkloadsReady(Namespace(id));
            marked.insert(id);
          }
        }
        return marked.size() == ids.size();
      },
      90s, 100ms));
  std::set<std::string> passwords;
  for (const auto& id : ids) {
    EXPECT_TRUE(WaitForPhase(id, "Ready", 60s)) << id << ": " << Status(id).dump();
    EXPECT_TRUE(kube_->NamespaceExists(Namespace(id)));
    passwords.insert(SecretValue(id, "POSTGRES_PASSWORD"));
  }
  EXPECT_EQ(passwords.size(), ids.size()) << "database credentials are shared between customers";
  EXPECT_FALSE(passwords.count(""));
}

TEST_F(ServiceTest, ApiFailureIsRetriedThenFailedWithItsMessageThenRecovers) {
  kube_->InjectFailures("PATCH", "/secrets/", 500, -1, "etcdserver: request timed out");
  StartProvisioner({{"PROVISIONER_KUBE_MAX_ATTEMPTS", "3"}});
  const auto id = Signup("flaky@api.example", "Flaky API");
  ASSERT_TRUE(WaitForPhase(id, "Failed")) << Status(id).dump();
  const auto failed = Status(id);
  EXPECT_NE(failed["message"].get<std::string>().find("etcdserver: request timed out"),
            std::string::npos)
      << failed.dump();
  EXPECT_NE(failed["message"].get<std::string>().find("500"), std::string::npos) << failed.dump();
  EXPECT_GE(kube_->CountRequests("PATCH", "/secrets/"), 3) << "not retried";

  kube_->ClearFailures();
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 30s)) << Status(id).dump();
  kube_->MarkWorkloadsReady(Namespace(id));
  ASSERT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();

  const auto metrics = HttpGet(Url("/metrics")).body;
  EXPECT_NE(metrics.find("iotistic_provisioner_apply_errors_total{code=\"500\",kind=\"Secret\"}"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("iotistic_provisioner_deployments{phase=\"Ready\"} 1"), std::string::npos)
      << metrics;
}

TEST_F(ServiceTest, ForbiddenIsNotRetriedAndFailsWithTheApiMessage) {
  kube_->InjectFailures("PATCH", "/namespaces/", 403, -1,
                        "namespaces is forbidden: User cannot patch resource");
  StartProvisioner({{"PROVISIONER_KUBE_MAX_ATTEMPTS", "5"}});
  const auto id = Signup("denied@rbac.example", "Denied");
  ASSERT_TRUE(WaitForPhase(id, "Failed")) << Status(id).dump();
  EXPECT_NE(Status(id)["message"].get<std::string>().find("forbidden"), std::string::npos);
  // One attempt per reconciliation step, not five.
  const int patches = kube_->CountRequests("PATCH", "/namespaces/");
  const auto steps = Status(id);
  EXPECT_LE(patches, 3) << steps.dump();
}

TEST_F(ServiceTest, UpgradeReappliesWithNewValuesAndLicenseKeepingTheRest) {
  StartProvisioner();
  const auto id = Signup("upgrade@acme.example", "Upgrade Co");
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 20s));
  kube_->MarkWorkloadsReady(Namespace(id));
  ASSERT_TRUE(WaitForPhase(id, "Ready"));
  const auto old_license = SecretValue(id, "IOTISTIC_LICENSE_KEY");
  const auto old_password = SecretValue(id, "POSTGRES_PASSWORD");

  const auto upgraded = Post("/api/customers/" + id + "/deployment/upgrade",
                             R"({"values": {"mosquitto": {"maxQueuedMessages": 5000}},
                                 "license": {"plan": "pro"}})",
                             true);
  ASSERT_EQ(upgraded.status, 202) << upgraded.body;
  EXPECT_EQ(json::parse(upgraded.body)["desired_generation"], 2);
  ASSERT_TRUE(WaitFor(
      [&] {
        const auto s = Status(id);
        return s.value("applied_generation", 0) == 2;
      },
      20s))
      << Status(id).dump();
  const auto config =
      kube_->Object("v1", "ConfigMap", Namespace(id), "customer-" + id + "-mosquitto-config");
  ASSERT_TRUE(config.has_value());
  EXPECT_NE(
      config->at("data")["mosquitto.conf"].get<std::string>().find("max_queued_messages 5000"),
      std::string::npos);
  const auto claims =
      provisioner::VerifyLicense(SecretValue(id, "IOTISTIC_LICENSE_KEY"), public_key_pem_);
  ASSERT_TRUE(claims.ok()) << claims.error();
  EXPECT_EQ(claims.value().plan, "pro");
  EXPECT_EQ(postgres_->Psql("SELECT plan FROM customers WHERE id = '" + id + "'", database_),
            "pro");
  EXPECT_NE(SecretValue(id, "IOTISTIC_LICENSE_KEY"), old_license);
  EXPECT_EQ(SecretValue(id, "POSTGRES_PASSWORD"), old_password) << "credentials must be reused";
  kube_->MarkWorkloadsReady(Namespace(id));
  EXPECT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();

  // Values the renderer rejects, and values the provisioner owns, are refused by name.
  auto refused = Post("/api/customers/" + id + "/deployment/upgrade",
                      R"({"values": {"mosquitto": {"mqttPort": "not a port"}}})", true);
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("mosquitto.mqttPort"), std::string::npos) << refused.body;
  refused = Post("/api/customers/" + id + "/deployment/upgrade",
                 R"({"values": {"mosquitto": {"maxQueuedMesages": 1}}})", true);
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("values.mosquitto.maxQueuedMesages"), std::string::npos)
      << refused.body;
  refused = Post("/api/customers/" + id + "/deployment/upgrade",
                 R"({"values": {"customer": {"id": "someone-else"}}})", true);
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("values.customer"), std::string::npos) << refused.body;
  refused = Post("/api/customers/" + id + "/deployment/upgrade",
                 R"({"values": {"postgres": {"storageSize": "20Gi"}}})", true);
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("values.postgres.storageSize"), std::string::npos) << refused.body;
  // The broker's users are the provisioner's: an upgrade cannot set a password it knows.
  refused = Post("/api/customers/" + id + "/deployment/upgrade",
                 R"({"values": {"mosquitto": {"auth": {"device": {"username": "mine"}}}}})", true);
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("values.mosquitto.auth"), std::string::npos) << refused.body;
  EXPECT_EQ(Status(id)["desired_generation"], 2);
}

TEST_F(ServiceTest, UpgradeThatTurnsTheIngressOffDeletesIt) {
  StartProvisioner();
  const std::string email = "private@acme.example";
  const std::string company = "Private Co";
  const auto id = Signup(email, company);
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 20s));
  kube_->MarkWorkloadsReady(Namespace(id));
  ASSERT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();
  const std::string ingress = "customer-" + id + "-ingress";
  ASSERT_TRUE(kube_->Object("networking.k8s.io/v1", "Ingress", Namespace(id), ingress).has_value())
      << "the chart's default has the Ingress on";

  const auto upgraded = Post("/api/customers/" + id + "/deployment/upgrade",
                             R"({"values": {"ingress": {"enabled": false}}})", true);
  ASSERT_EQ(upgraded.status, 202) << upgraded.body;
  ASSERT_TRUE(WaitFor(
      [&] {
        return !kube_->Object("networking.k8s.io/v1", "Ingress", Namespace(id), ingress) &&
               Status(id).value("applied_generation", 0) == 2;
      },
      20s))
      << Status(id).dump();
  // Everything else is still there, unchanged: exactly what render gives without the Ingress.
  const auto rendered = Rendered(id, email, company, {{"ingress", {{"enabled", false}}}});
  ASSERT_FALSE(std::any_of(rendered.begin(), rendered.end(),
                           [](const json& o) { return o["kind"] == "Ingress"; }));
  ExpectClusterHoldsExactly(rendered, id);
  EXPECT_TRUE(kube_->NamespaceExists(Namespace(id)));
  EXPECT_EQ(NamespaceDeletes(id), 0);
  const auto requests = kube_->Requests();
  const auto deleted = std::find_if(requests.begin(), requests.end(), [&](const auto& r) {
    return r.method == "DELETE" && r.path.ends_with("/ingresses/" + ingress);
  });
  ASSERT_NE(deleted, requests.end());
  EXPECT_EQ(deleted->status, 200);
  EXPECT_EQ(json::parse(deleted->body)["propagationPolicy"], "Background");
  kube_->MarkWorkloadsReady(Namespace(id));
  ASSERT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();

  // Turned on again, it comes back.
  ASSERT_EQ(Post("/api/customers/" + id + "/deployment/upgrade",
                 R"({"values": {"ingress": {"enabled": true}}})", true)
                .status,
            202);
  ASSERT_TRUE(WaitFor(
      [&] {
        return kube_->Object("networking.k8s.io/v1", "Ingress", Namespace(id), ingress).has_value();
      },
      20s))
      << Status(id).dump();
  kube_->MarkWorkloadsReady(Namespace(id));
  ASSERT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();
  ExpectClusterHoldsExactly(Rendered(id, email, company), id);
}

TEST_F(ServiceTest, ADeletedConfigMapOfAReadyCustomerIsAppliedAgain) {
  StartProvisioner({{"PROVISIONER_REAPPLY_INTERVAL", "1s"}});
  const std::string email = "drift@acme.example";
  const std::string company = "Drift Co";
  const auto id = Signup(email, company);
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 20s));
  kube_->MarkWorkloadsReady(Namespace(id));
  ASSERT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();

  const std::string config = "customer-" + id + "-mosquitto-config";
  ASSERT_TRUE(kube_->RemoveObject("v1", "ConfigMap", Namespace(id), config));
  ASSERT_FALSE(kube_->Object("v1", "ConfigMap", Namespace(id), config).has_value());
  std::set<std::string> phases;
  ASSERT_TRUE(WaitFor(
      [&] {
        phases.insert(Status(id).value("phase", "(no status)"));
        return kube_->Object("v1", "ConfigMap", Namespace(id), config).has_value();
      },
      10s, 50ms))
      << Status(id).dump();
  EXPECT_EQ(phases, std::set<std::string>{"Ready"}) << "the repair is not a new deployment";
  EXPECT_EQ(Status(id)["phase"], "Ready");
  EXPECT_EQ(Status(id)["desired_generation"], 1);
  ExpectClusterHoldsExactly(Rendered(id, email, company), id);
  EXPECT_EQ(NamespaceDeletes(id), 0);
  // Unchanged objects were applied again without being changed.
  EXPECT_EQ(kube_->WriteCount("v1", "Secret", Namespace(id), "customer-" + id + "-secrets"), 1);
}

TEST_F(ServiceTest, BadInputGetsA4xxNamingTheFieldAndTheServiceKeepsServing) {
  StartProvisioner({{"PROVISIONER_SIGNUP_BURST", "1000"}});
  struct Case {
    std::string body;
    long status;
    std::string names;
  };
  const std::vector<Case> cases = {
      {"{not json", 400, "body"},
      {"[1,2]", 400, "body"},
      {R"({"password": "a long enough password 1", "company_name": "X"})", 400, "email"},
      {R"({"email": 42, "password": "a long enough password 1", "company_name": "X"})", 400,
       "email"},
      {R"({"email": "no-at-sign", "password": "a long enough password 1", "company_name": "X"})",
       400, "email"},
      {R"({"email": "a@b.example", "password": "short", "company_name": "X"})", 400, "password"},
      {R"({"email": "a@b.example", "password": "a long enough password 1", "company_name": ""})",
       400, "company_name"},
      {R"({"email": "a@b.example", "password": "a long enough password 1", "company_name": "X",
          "plan": "free"})",
       400, "plan"},
  };
  for (const auto& c : cases) {
    const auto response = Post("/api/customers/signup", c.body, true);
    EXPECT_EQ(response.status, c.status) << c.body << " -> " << response.body;
    EXPECT_NE(response.body.find(c.names), std::string::npos) << c.body << " -> " << response.body;
    EXPECT_EQ(Header(response, "content-type"), "application/json");
  }
  const auto huge = Post("/api/customers/signup", std::string(1 << 20, 'x'), true);
  EXPECT_EQ(huge.status, 413) << huge.body;
  EXPECT_NE(huge.body.find("body"), std::string::npos);
  const auto invalid_utf8 =
      Post("/api/customers/signup",
           SignupBody("u@utf8.example", "ok").dump().replace(1, 0, "\"x\":\"\xff\xfe\","), true);
  EXPECT_EQ(invalid_utf8.status, 400) << invalid_utf8.body;

  // SQL-like and unicode names are data: stored and rendered verbatim, harmless.
  const std::string tricky =
      "Robert'); DROP TABLE customers;-- \xe2\x9c\x93 \xe6\xa0\xaa\xe5\xbc\x8f";
  const auto created =
      Post("/api/customers/signup", SignupBody("bobby@tables.example", tricky).dump(), true);
  ASSERT_EQ(created.status, 201) << created.body;
  const auto id = json::parse(created.body)["customer_id"].get<std::string>();
  EXPECT_EQ(
      postgres_->Psql("SELECT company_name FROM customers WHERE id = '" + id + "'", database_),
      tricky);
  ASSERT_TRUE(WaitFor([&] { return !SecretValue(id, "CUSTOMER_COMPANY_NAME").empty(); }, 20s));
  EXPECT_EQ(SecretValue(id, "CUSTOMER_COMPANY_NAME"), tricky);

  const auto duplicate =
      Post("/api/customers/signup", SignupBody("BOBBY@tables.example", "Again").dump(), true);
  EXPECT_EQ(duplicate.status, 409) << duplicate.body;
  EXPECT_NE(duplicate.body.find("email"), std::string::npos);

  // Admin endpoints: no token, a wrong token, unknown customers.
  for (const auto& path : {"/api/customers/" + id + "/deployment/status",
                           "/api/customers/" + id + "/usage?from=0&to=3600"}) {
    EXPECT_EQ(HttpGet(Url(path)).status, 401) << path;
    EXPECT_EQ(HttpGet(Url(path), {"Authorization: Bearer wrong-token-wrong-token"}).status, 401);
  }
  EXPECT_EQ(HttpRequest("DELETE", Url("/api/customers/" + id + "/deployment")).status, 401);
  EXPECT_EQ(Admin("GET", "/api/customers/nobody-here/deployment/status").status, 404);
  EXPECT_EQ(Admin("DELETE", "/api/customers/nobody-here/deployment").status, 404);
  const auto weird = Admin("GET", "/api/customers/%27%3B%20DROP/deployment/status");
  EXPECT_EQ(weird.status, 404) << weird.body;
  EXPECT_NE(weird.body.find("customer_id"), std::string::npos);
  EXPECT_EQ(Admin("GET", "/api/customers/" + id + "/usage?from=yesterday&to=1").status, 400);
  EXPECT_EQ(HttpRequest("PUT", Url("/api/customers/signup"), "{}").status, 405);
  EXPECT_EQ(HttpGet(Url("/nowhere")).status, 404);
  EXPECT_EQ(HttpGet(Url("/healthz")).status, 200) << "the service stopped serving";
  EXPECT_TRUE(provisioner_->Running());
}

TEST_F(ServiceTest, AFrozenDatabaseGivesA503WithinTheDeadlineAndEverythingRecoversAfterSigcont) {
  StartProvisioner({{"PROVISIONER_DATABASE_TIMEOUT", "2s"}});
  const auto id = Signup("ops@frozen.example", "Frozen Sensors");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 20s));

  // SIGSTOP keeps every connection open and unanswered: what a hung server or a silently
  // partitioned host looks like to a client. The guard thaws it even when an assertion fails.
  postgres_->SignalAll(SIGSTOP);
  struct Thaw {
    PostgresServer& postgres;
    ~Thaw() { postgres.SignalAll(SIGCONT); }
  } thaw{*postgres_};
  const std::vector<std::string> admin = {std::string("Authorization: Bearer ") + kAdminToken};
  // Without a deadline each call waits as long as the database stays frozen, and the client
  // gives up first (status 0). Repeated: pooled connections and newly opened ones alike.
  for (int attempt = 0; attempt < 3; ++attempt) {
    const auto status =
        HttpRequest("GET", Url("/api/customers/" + id + "/deployment/status"), "", admin, 20s);
    EXPECT_EQ(status.status, 503) << "attempt " << attempt << ": " << status.body << status.error;
  }
  const auto signup =
      HttpRequest("POST", Url("/api/customers/signup"),
                  SignupBody("ops@second.example", "Second Sensors").dump(),
                  {"Content-Type: application/json", "Expect:", AdminHeader()}, 30s);
  EXPECT_EQ(signup.status, 503) << signup.body << signup.error;
  EXPECT_EQ(HttpGet(Url("/healthz"), {}, 1s).status, 200);
  postgres_->SignalAll(SIGCONT);

  // Everything recovers by itself: reads, a new signup, and both customers reach Ready.
  ASSERT_TRUE(WaitFor([&] { return Status(id).contains("phase"); }, 30s)) << Status(id).dump();
  const auto second = Signup("ops@second.example", "Second Sensors");
  ASSERT_FALSE(second.empty());
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(second); }, 30s));
  for (const auto& customer : {id, second}) {
    kube_->MarkWorkloadsReady(Namespace(customer));
    EXPECT_TRUE(WaitForPhase(customer, "Ready")) << customer << ": " << Status(customer).dump();
  }
  EXPECT_NE(provisioner_->Log().find("the database did not answer within 2000 ms"),
            std::string::npos)
      << provisioner_->Log();
}

TEST_F(ServiceTest, ThePlatformStartsAtMostItsDeploymentsPerHourWhateverTheClients) {
  StartProvisioner(
      {{"PROVISIONER_DEPLOYMENTS_PER_HOUR", "2"}, {"PROVISIONER_TRUSTED_PROXIES", "127.0.0.0/8"}});
  // Each signup from its own address and alias: the per-client limit never applies.
  auto signup_from = [&](const std::string& client, const std::string& email) {
    return HttpRequest(
        "POST", Url("/api/customers/signup"), SignupBody(email, "Capped").dump(),
        {"Content-Type: application/json", "X-Forwarded-For: " + client, AdminHeader()});
  };
  EXPECT_EQ(signup_from("198.51.100.1", "c+1@capped.example").status, 201);
  EXPECT_EQ(signup_from("198.51.100.2", "c+2@capped.example").status, 201);
  const auto third = signup_from("198.51.100.3", "c+3@capped.example");
  EXPECT_EQ(third.status, 503) << third.body;
  ASSERT_TRUE(third.headers.contains("retry-after"));
  // Two per hour: the next slot is 30 minutes away.
  EXPECT_GE(std::stol(third.headers.at("retry-after")), 1700);
  // An invalid signup takes no slot and still gets its own error.
  const auto invalid = signup_from("198.51.100.4", R"(not an address)");
  EXPECT_EQ(invalid.status, 400) << invalid.body;
  EXPECT_EQ(Admin("GET", "/api/customers/c-3-capped/deployment/status").status, 404);
  const auto metrics = HttpGet(Url("/metrics")).body;
  EXPECT_NE(metrics.find("iotistic_provisioner_signups_refused_total{reason=\"deployment_cap\"} 1"),
            std::string::npos)
      << metrics;
}

// Each signup hashes its password in a 19 MiB Argon2id block on a thread of its own. With glibc's
// dynamic mmap threshold every arena kept one such block after it was freed: 48 signups left the
// provisioner ~400 MiB resident, and a burst got it killed at its 256 Mi limit
// (manifests/provisioner/40-deployment.yaml). Under a sanitizer malloc is not glibc's.
TEST_F(ServiceTest, ABurstOfSignupsHandsItsPasswordHashingMemoryBack) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizer's allocator is not the one measured";
#endif
  StartProvisioner({{"PROVISIONER_SIGNUP_BURST", "1000"}});
  constexpr int kSignups = 48;
  std::atomic<int> next{0};
  std::atomic<int> created{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&] {
      for (int i = next++; i < kSignups; i = next++) {
        const auto response =
            Post("/api/customers/signup",
                 SignupBody("burst" + std::to_string(i) + "@example.com", "Burst").dump(), true);
        if (response.status == 201) ++created;
      }
    });
  }
  for (auto& client : clients) client.join();
  ASSERT_EQ(created, kSignups);
  const long resident_kib = ProcStatusKib(provisioner_->pid(), "VmRSS");
  ASSERT_GT(resident_kib, 0);
  // The memory request of the manifest (128 Mi): what the provisioner is scheduled with.
  EXPECT_LT(resident_kib, 128 * 1024) << "resident after the burst, KiB";
}

TEST_F(ServiceTest, RequestBodiesMustBeDeclaredAsJson) {
  StartProvisioner();
  const auto body = SignupBody("typed@json.example", "Typed").dump();
  for (const std::vector<std::string>& headers :
       {std::vector<std::string>{"Content-Type:", "Expect:"},  // libcurl then sends none
        std::vector<std::string>{"Content-Type: text/plain", "Expect:"},
        std::vector<std::string>{"Content-Type: application/x-www-form-urlencoded", "Expect:"},
        std::vector<std::string>{"Content-Type: application/jsonp", "Expect:"}}) {
    const auto refused = HttpRequest("POST", Url("/api/customers/signup"), body, headers);
    EXPECT_EQ(refused.status, 415) << headers.front() << ": " << refused.body;
    EXPECT_NE(refused.body.find("Content-Type"), std::string::npos) << refused.body;
  }
  const auto login =
      HttpRequest("POST", Url("/api/customers/login"), R"({"email":"a@b.example","password":"x"})",
                  {"Content-Type: text/plain", "Expect:"});
  EXPECT_EQ(login.status, 415) << login.body;
  const auto accepted =
      HttpRequest("POST", Url("/api/customers/signup"), body,
                  {"Content-Type: Application/JSON; charset=utf-8", "Expect:", AdminHeader()});
  EXPECT_EQ(accepted.status, 201) << accepted.body;
}

TEST_F(ServiceTest, SignupIsRateLimitedPerClient) {
  StartProvisioner(
      {{"PROVISIONER_SIGNUP_BURST", "2"}, {"PROVISIONER_SIGNUP_RATE_PER_MINUTE", "1"}});
  EXPECT_EQ(Post("/api/customers/signup", SignupBody("r1@rate.example", "R").dump(), true).status,
            201);
  EXPECT_EQ(Post("/api/customers/signup", "{bad", true).status, 400);  // counts too
  const auto limited =
      Post("/api/customers/signup", SignupBody("r3@rate.example", "R").dump(), true);
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_FALSE(Header(limited, "retry-after").empty());
  EXPECT_EQ(Admin("GET", "/healthz").status, 200);
}

TEST_F(ServiceTest, BehindATrustedProxyEachForwardedClientHasItsOwnLimit) {
  StartProvisioner({{"PROVISIONER_SIGNUP_BURST", "1"},
                    {"PROVISIONER_SIGNUP_RATE_PER_MINUTE", "1"},
                    {"PROVISIONER_TRUSTED_PROXIES", "127.0.0.0/8"}});
  auto signup_from = [&](const std::string& client, const std::string& email) {
    return HttpRequest(
               "POST", Url("/api/customers/signup"), SignupBody(email, "Proxy").dump(),
               {"Content-Type: application/json", "X-Forwarded-For: " + client, AdminHeader()})
        .status;
  };
  EXPECT_EQ(signup_from("198.51.100.1", "p1@proxy.example"), 201);
  EXPECT_EQ(signup_from("198.51.100.1", "p2@proxy.example"), 429);
  EXPECT_EQ(signup_from("198.51.100.2", "p3@proxy.example"), 201) << "one client blocked another";
  // A forged address in front of the one the proxy appended changes nothing.
  EXPECT_EQ(signup_from("203.0.113.5, 198.51.100.1", "p4@proxy.example"), 429);
}

TEST_F(ServiceTest, SecretsNeverAppearInLogsResponsesOrTheStore) {
  StartProvisioner();
  const std::string password = "Pa55word-that-must-stay-secret";
  const auto response = Post("/api/customers/signup",
                             SignupBody("keeper@vault.example", "Keeper", password).dump(), true);
  ASSERT_EQ(response.status, 201) << response.body;
  const auto id = json::parse(response.body)["customer_id"].get<std::string>();
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 20s));
  // A signup with a bad body that contains the password must not echo it either.
  const auto bad =
      Post("/api/customers/signup",
           R"({"email": "x", "password": ")" + password + R"(", "company_name": "K"})", true);
  EXPECT_EQ(bad.body.find(password), std::string::npos);

  const auto status = Admin("GET", "/api/customers/" + id + "/deployment/status").body;
  const auto dump = postgres_->Psql(
      "SELECT row_to_json(c)::text FROM customers c; SELECT row_to_json(d)::text FROM deployments "
      "d",
      database_);
  // The key's base64 body lines, not its armour.
  std::vector<std::string> key_lines;
  std::istringstream key(signing_key_pem_);
  for (std::string line; std::getline(key, line);) {
    if (!line.empty() && line.find("-----") == std::string::npos) key_lines.push_back(line);
  }
  ASSERT_FALSE(key_lines.empty());
  provisioner_->Stop(SIGTERM);
  const auto log = provisioner_->Log();
  for (const auto& [where, text] : std::vector<std::pair<std::string, std::string>>{
           {"response", response.body}, {"status", status}, {"store", dump}, {"log", log}}) {
    EXPECT_EQ(text.find(password), std::string::npos) << "password in the " << where;
    for (const auto& line : key_lines) {
      EXPECT_EQ(text.find(line), std::string::npos) << "signing key in the " << where;
    }
  }
  EXPECT_NE(dump.find("$argon2id$"), std::string::npos) << dump;
}

TEST_F(ServiceTest, UsageEndpointReturnsStoredRecordsAsJsonOrCsv) {
  StartProvisioner();
  const auto id = Signup("usage@acme.example", "Usage Co");
  postgres_->Psql(
      "INSERT INTO usage_records (customer_id, metric, period_start, period_end, quantity, "
      "complete) VALUES "
      "('" +
          id +
          "', 'mqtt_messages', '2026-11-25T10:00:00Z', '2026-11-25T11:00:00Z', 1200, true),"
          "('" +
          id +
          "', 'mqtt_messages', '2026-11-25T11:00:00Z', '2026-11-25T12:00:00Z', 34, false),"
          "('" +
          id + "', 'mqtt_messages', '2026-11-25T12:00:00Z', '2026-11-25T13:00:00Z', 99, true)",
      database_);
  const auto path =
      "/api/customers/" + id + "/usage?from=2026-11-25T10:00:00Z&to=2026-11-25T12%3A00%3A00Z";
  const auto as_json = Admin("GET", path);
  ASSERT_EQ(as_json.status, 200) << as_json.body;
  const auto records = json::parse(as_json.body);
  ASSERT_EQ(records.size(), 2u) << as_json.body;
  EXPECT_EQ(records[0]["metric"], "mqtt_messages");
  EXPECT_EQ(records[0]["period_start"], "2026-11-25T10:00:00Z");
  EXPECT_EQ(records[0]["complete"], true);
  EXPECT_EQ(records[1]["complete"], false);
  const auto as_csv = Admin("GET", path + "&format=csv");
  ASSERT_EQ(as_csv.status, 200);
  EXPECT_EQ(as_csv.body,
            "customer_id,metric,period_start,period_end,quantity,complete\n" + id +
                ",mqtt_messages,2026-11-25T10:00:00Z,2026-11-25T11:00:00Z,1200,true\n" + id +
                ",mqtt_messages,2026-11-25T11:00:00Z,2026-11-25T12:00:00Z,34,false\n");
  EXPECT_EQ(Admin("GET", "/api/customers/" + id + "/usage?from=2026-11-25T12:00:00Z").status, 400);
  EXPECT_EQ(Admin("GET", "/api/customers/" + id +
                             "/usage?from=2026-11-25T12:00:00Z&to=2026-11-25T10:00:00Z")
                .status,
            400);
}

// The usage ledger through the binary's routes: an aggregation job pages through every
// customer's entries with the admin token, the cursor carries it on exactly where it stopped, and
// finality and an adjustment of a final figure arrive as new entries with new revisions; the same
// entries as a CloudEvents batch carry the same ids on every read.
TEST_F(ServiceTest, UsageLedgerIsReadAfterACursorAsJsonOrCloudEvents) {
  StartProvisioner();
  const auto signup =
      Post("/api/customers/signup", SignupBody("ledger@acme.example", "Ledger Co").dump(), true);
  ASSERT_EQ(signup.status, 201) << signup.body;
  const auto signed_up = json::parse(signup.body);
  const std::string id = signed_up["customer_id"];
  const std::string customer_token = signed_up["access_token"];
  const auto other = Signup("other@acme.example", "Other Co");
  postgres_->Psql(
      "INSERT INTO usage_records (customer_id, metric, period_start, period_end, quantity, "
      "complete) VALUES ('" +
          id +
          "', 'mqtt_messages', '2026-11-25T10:00:00Z', '2026-11-25T11:00:00Z', 1200, true), ('" +
          other +
          "', 'mqtt_messages', '2026-11-25T10:00:00Z', '2026-11-25T11:00:00Z', 5, true), ('" + id +
          "', 'mqtt_bytes', '2026-11-25T10:00:00Z', '2026-11-25T11:00:00Z', 4096, true)",
      database_);

  // Pages of two: every entry once, in order, then an empty page that keeps the cursor.
  auto read_page = [&](const std::string& path) {
    const auto response = Admin("GET", path);
    EXPECT_EQ(response.status, 200) << path << ": " << response.body;
    EXPECT_EQ(Header(response, "content-type"), "application/json");
    return json::parse(response.body, nullptr, false);
  };
  const auto first = read_page("/api/usage?since=0&limit=2");
  ASSERT_EQ(first["entries"].size(), 2u) << first.dump();
  EXPECT_EQ(first["entries"][0]["customer_id"], id);
  EXPECT_EQ(first["entries"][0]["quantity"], 1200);
  EXPECT_EQ(first["entries"][0]["revision"], 1);
  EXPECT_EQ(first["entries"][0]["kind"], "figure");
  EXPECT_EQ(first["entries"][1]["customer_id"], other);
  const std::string after_first = first["next"];
  EXPECT_EQ(after_first, first["entries"][1]["cursor"]);
  const auto second = read_page("/api/usage?since=" + after_first + "&limit=2");
  ASSERT_EQ(second["entries"].size(), 1u) << second.dump();
  EXPECT_EQ(second["entries"][0]["metric"], "mqtt_bytes");
  const std::string caught_up = second["next"];
  const auto empty = read_page("/api/usage?since=" + caught_up);
  EXPECT_EQ(empty["entries"].size(), 0u);
  EXPECT_EQ(empty["next"], caught_up);

  // The billing side makes the customer's period final, then a recomputation adjusts it: two
  // new entries of that period, revisions 2 and 3; the other customer has none.
  const auto finalized = HttpRequest(
      "POST", Url("/api/usage/finalize"),
      json{{"customer_id", id}, {"until", "2026-11-25T11:00:00Z"}}.dump(),
      {std::string("Authorization: Bearer ") + kAdminToken, "Content-Type: application/json"});
  ASSERT_EQ(finalized.status, 200) << finalized.body;
  postgres_->Psql(
      "INSERT INTO usage_adjustments (customer_id, metric, period_start, period_end, delta, "
      "reason) VALUES ('" +
          id + "', 'mqtt_messages', '2026-11-25T10:00:00Z', '2026-11-25T11:00:00Z', 30, 'replica')",
      database_);
  const auto later = read_page("/api/customers/" + id + "/usage?since=" + caught_up);
  ASSERT_EQ(later["entries"].size(), 3u) << later.dump();  // two final, one adjustment
  const auto& adjustment = later["entries"][2];
  EXPECT_EQ(adjustment["kind"], "adjustment");
  EXPECT_EQ(adjustment["metric"], "mqtt_messages");
  EXPECT_EQ(adjustment["revision"], 3);
  EXPECT_EQ(adjustment["quantity"], 1230);
  EXPECT_EQ(adjustment["delta"], 30);
  EXPECT_EQ(adjustment["final"], true);
  EXPECT_EQ(read_page("/api/customers/" + other + "/usage?since=" + caught_up)["entries"].size(),
            0u);

  // CloudEvents: the same entries, ids stable across reads, the cursor in a header.
  auto events_of = [&](const std::string& path) {
    const auto response = Admin("GET", path);
    EXPECT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(Header(response, "content-type"), "application/cloudevents-batch+json");
    EXPECT_EQ(Header(response, "next-cursor"), later["next"].get<std::string>());
    return json::parse(response.body, nullptr, false);
  };
  const auto events = events_of("/api/usage?since=0&format=cloudevents");
  ASSERT_TRUE(events.is_array());
  ASSERT_EQ(events.size(), 6u) << events.dump();
  EXPECT_EQ(events, events_of("/api/usage?since=0&format=cloudevents"));
  std::set<std::string> ids;
  for (const auto& event : events) {
    ids.insert(event["id"].get<std::string>());
    for (const char* attribute :
         {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}) {
      EXPECT_TRUE(event.contains(attribute)) << attribute << " missing in " << event.dump();
    }
  }
  EXPECT_EQ(ids.size(), 6u);
  const auto& last = events[5];
  EXPECT_EQ(last["specversion"], "1.0");
  EXPECT_EQ(last["id"], id + "/mqtt_messages/2026-11-25T10:00:00Z/2026-11-25T11:00:00Z/3");
  EXPECT_EQ(last["type"], "io.iotistic.usage.mqtt_messages");
  EXPECT_EQ(last["subject"], id);
  EXPECT_EQ(last["time"], "2026-11-25T10:00:00Z");
  EXPECT_EQ(last["data"]["delta"], 30);

  // Bad parameters name themselves; every customer's ledger needs the admin token.
  for (const auto& [query, parameter] :
       std::vector<std::pair<std::string, std::string>>{{"", "since"},
                                                        {"?since=-1", "since"},
                                                        {"?since=0&limit=0", "limit"},
                                                        {"?since=0&limit=100000", "limit"},
                                                        {"?since=0&format=csv", "format"}}) {
    const auto refused = Admin("GET", "/api/usage" + query);
    EXPECT_EQ(refused.status, 400) << query;
    EXPECT_EQ(
        json::parse(refused.body, nullptr, false).value("error", "").rfind(parameter + ": ", 0), 0u)
        << query << ": " << refused.body;
  }
  const auto mixed = Admin("GET", "/api/customers/" + id + "/usage?since=0&from=0&to=3600");
  EXPECT_EQ(mixed.status, 400) << mixed.body;
  EXPECT_EQ(HttpGet(Url("/api/usage?since=0"), {"Authorization: Bearer " + customer_token}).status,
            401);
  const auto own = HttpGet(Url("/api/customers/" + id + "/usage?since=0"),
                           {"Authorization: Bearer " + customer_token});
  ASSERT_EQ(own.status, 200) << own.body;
  EXPECT_EQ(json::parse(own.body)["entries"].size(), 5u);
  EXPECT_EQ(Admin("POST", "/api/usage?since=0").status, 405);
}

// Secrets at rest (docs/security.md): the store holds the tenants' database passwords and license
// keys sealed (AES-256-GCM under PROVISIONER_ENCRYPTION_KEY_FILE), and what a restarted
// provisioner renders from it is what it rendered before.
TEST_F(ServiceTest, TheStoreDumpHoldsNoTenantSecretAndARestartAppliesIdenticalObjects) {
  StartProvisioner();
  const std::vector<std::pair<std::string, std::string>> signups = {
      {"vault@alpha.example", "Alpha Vault"}, {"vault@beta.example", "Beta Vault"}};
  std::vector<std::string> ids;
  for (const auto& [email, company] : signups) ids.push_back(Signup(email, company));
  std::vector<std::string> secrets;
  std::map<std::string, std::string> before;
  for (const auto& id : ids) {
    ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 20s)) << Status(id).dump();
    for (auto& secret : TenantSecrets(id)) secrets.push_back(std::move(secret));
    kube_->MarkWorkloadsReady(Namespace(id));
    ASSERT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();
    before[id] = ClusterObjects(id);
  }
  ASSERT_EQ(secrets.size(), 14u);

  const auto dump = Dump();
  for (const auto& secret : secrets) {
    EXPECT_EQ(dump.find(secret), std::string::npos) << "a tenant secret in the store's dump";
    // Nor a recognisable part of one (the JWT's claims and signature segments).
    for (std::size_t at = 0; at + 20 <= secret.size(); at += 20) {
      EXPECT_EQ(dump.find(secret.substr(at, 20)), std::string::npos) << "part of a tenant secret";
    }
  }
  const auto key_id = KeyIdOfFile(encryption_key_);
  EXPECT_EQ(Occurrences(dump, "sealed:v1:"), 14u) << dump;
  EXPECT_EQ(Occurrences(dump, "sealed:v1:" + key_id + ":"), 14u) << dump;

  // Restarted, every customer is applied again from the store: the same objects, byte for byte,
  // and the API server saw no change (generation 1, one write plus the test's status write).
  provisioner_->Stop(SIGTERM);
  StartProvisioner({{"PROVISIONER_REAPPLY_INTERVAL", "1s"}});
  ASSERT_TRUE(WaitForReapply(ids));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto& id = ids[i];
    EXPECT_EQ(ClusterObjects(id), before[id]) << id;
    ExpectClusterHoldsExactly(Rendered(id, signups[i].first, signups[i].second), id);
    for (const auto& object : kube_->ObjectsIn(Namespace(id))) {
      EXPECT_EQ(object["metadata"]["generation"], 1) << object["kind"] << " changed";
    }
    EXPECT_EQ(Status(id)["phase"], "Ready");
  }
  provisioner_->Stop(SIGTERM);
  const auto log = provisioner_->Log();
  for (const auto& secret : secrets) EXPECT_EQ(log.find(secret), std::string::npos);
  EXPECT_NE(log.find("sealed with AES-256-GCM under key id " + key_id), std::string::npos) << log;
}

// A customer stored before broker authentication has no broker users and no exporter password;
// the chart requires the users, so its values no longer render. At start the provisioner
// generates them once, as an upgrade, and the stack is applied again with them.
TEST_F(ServiceTest, ACustomerStoredWithoutGeneratedValuesGetsThemOnceAtStart) {
  StartProvisioner();
  const auto id = Signup("old@customer.example", "Old Customer");
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 20s)) << Status(id).dump();
  kube_->MarkWorkloadsReady(Namespace(id));
  ASSERT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();
  const auto database_password = SecretValue(id, "POSTGRES_PASSWORD");
  provisioner_->Stop(SIGTERM);
  // The row as an older provisioner wrote it.
  postgres_->Psql(
      "UPDATE deployments SET chart_values = (chart_values - 'mosquitto') #- "
      "'{exporter,basicAuth}' WHERE customer_id = '" +
          id + "'",
      database_);
  ASSERT_EQ(postgres_->Psql("SELECT chart_values ? 'mosquitto' FROM deployments", database_), "f");

  StartProvisioner();
  ASSERT_TRUE(WaitFor(
      [&] {
        const auto status = Status(id);
        return status.value("desired_generation", 0) == 2 &&
               status.value("applied_generation", 0) == 2 && status.value("phase", "") == "Ready";
      },
      30s))
      << Status(id).dump();
  // Stored sealed, rendered into the Secret: both users in the password file, the exporter's
  // password for /metrics; the database password is the one the customer had.
  const auto sealed = [&](const std::string& path) {
    return postgres_->Psql("SELECT chart_values #>> '{" + path +
                               "}' FROM deployments WHERE customer_id = '" + id + "'",
                           database_);
  };
  EXPECT_TRUE(provisioner::SecretBox::IsSealed(sealed("mosquitto,auth,device,password")));
  EXPECT_TRUE(provisioner::SecretBox::IsSealed(sealed("exporter,basicAuth,password")));
  EXPECT_EQ(TenantSecrets(id).size(), 7u);
  EXPECT_EQ(SecretValue(id, "POSTGRES_PASSWORD"), database_password);
  EXPECT_TRUE(PasswordHash(id, SecretValue(id, "MQTT_DEVICE_USERNAME")).starts_with("$7$"));

  // Once: another start changes nothing.
  const auto device_password = SecretValue(id, "MQTT_DEVICE_PASSWORD");
  provisioner_->Stop(SIGTERM);
  StartProvisioner();
  EXPECT_EQ(Status(id).value("desired_generation", 0), 2);
  EXPECT_EQ(SecretValue(id, "MQTT_DEVICE_PASSWORD"), device_password);
}

TEST_F(ServiceTest, RotationSealsClearAndOldValuesUnderTheNewKeyAndTheOldKeyCanGo) {
  // A customer from before encryption (the explicit opt-out stores in clear, and says so)...
  StartProvisioner(
      {{"PROVISIONER_ENCRYPTION_KEY_FILE", ""}, {"PROVISIONER_ALLOW_UNENCRYPTED_SECRETS", "true"}});
  const auto clear_id = Signup("old@clear.example", "Old Clear");
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(clear_id); }, 20s));
  const auto clear_secrets = TenantSecrets(clear_id);
  provisioner_->Stop(SIGTERM);
  EXPECT_NE(provisioner_->Log().find("IN CLEAR"), std::string::npos) << provisioner_->Log();
  EXPECT_NE(Dump().find(clear_secrets[1]), std::string::npos) << "the opt-out stores in clear";

  // ...one sealed under the old key; the clear one still reads, and is reported.
  const auto old_key = encryption_key_;
  StartProvisioner();
  const auto sealed_id = Signup("old@sealed.example", "Old Sealed");
  ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(sealed_id); }, 20s));
  const auto sealed_secrets = TenantSecrets(sealed_id);
  for (const auto& id : {clear_id, sealed_id}) kube_->MarkWorkloadsReady(Namespace(id));
  ASSERT_TRUE(WaitForPhase(clear_id, "Ready")) << Status(clear_id).dump();
  ASSERT_TRUE(WaitForPhase(sealed_id, "Ready")) << Status(sealed_id).dump();
  provisioner_->Stop(SIGTERM);
  EXPECT_NE(provisioner_->Log().find("7 secret chart values are stored in clear"),
            std::string::npos)
      << provisioner_->Log();
  const std::map<std::string, std::string> before = {{clear_id, ClusterObjects(clear_id)},
                                                     {sealed_id, ClusterObjects(sealed_id)}};

  // Rotation to a new key, the old one given as previous.
  const auto new_key = WriteEncryptionKey(dir_->path() / "new.key");
  const auto old_id = KeyIdOfFile(old_key);
  const auto new_id = KeyIdOfFile(new_key);
  auto rotated = Rotate(new_key, old_key);
  ASSERT_EQ(rotated.exit_code, 0) << rotated.output;
  EXPECT_NE(rotated.output.find("7 values sealed again and 7 values in clear sealed, in 2 "
                                "customers; 0 were already under key id " +
                                new_id),
            std::string::npos)
      << rotated.output;
  const auto dump = Dump();
  for (const auto* secrets : {&clear_secrets, &sealed_secrets}) {
    for (const auto& secret : *secrets) {
      EXPECT_EQ(dump.find(secret), std::string::npos) << "a tenant secret after rotation";
    }
  }
  EXPECT_EQ(dump.find(old_id), std::string::npos) << "the old key id is still in the store";
  EXPECT_EQ(Occurrences(dump, "sealed:v1:" + new_id + ":"), 14u) << dump;

  // Idempotent: a second run changes nothing, not even the nonces.
  rotated = Rotate(new_key, old_key);
  ASSERT_EQ(rotated.exit_code, 0) << rotated.output;
  EXPECT_NE(rotated.output.find("0 values sealed again and 0 values in clear sealed, in 0 "
                                "customers; 14 were already"),
            std::string::npos)
      << rotated.output;
  EXPECT_EQ(Dump(), dump);

  // The old key removed: everything opens with the new one alone, the same objects are applied.
  StartProvisioner(
      {{"PROVISIONER_ENCRYPTION_KEY_FILE", new_key}, {"PROVISIONER_REAPPLY_INTERVAL", "1s"}});
  ASSERT_TRUE(WaitForReapply({clear_id, sealed_id}));
  for (const auto& id : {clear_id, sealed_id}) {
    EXPECT_EQ(ClusterObjects(id), before.at(id)) << id;
    for (const auto& object : kube_->ObjectsIn(Namespace(id))) {
      EXPECT_EQ(object["metadata"]["generation"], 1) << object["kind"] << " changed";
    }
    EXPECT_EQ(Status(id)["phase"], "Ready") << Status(id).dump();
  }
  EXPECT_EQ(TenantSecrets(clear_id), clear_secrets);
  EXPECT_EQ(TenantSecrets(sealed_id), sealed_secrets);
  provisioner_->Stop(SIGTERM);

  // The old key alone is now a wrong key: serve refuses to start, rotation writes nothing.
  Process refused(
      Process::Options{{PROVISIONER_PATH, "serve", "--listen", "127.0.0.1:" + std::to_string(port_),
                        "--health-listen", "127.0.0.1:" + std::to_string(FreePort())},
                       [&] {
                         auto env = Env();
                         env.emplace_back("PROVISIONER_ENCRYPTION_KEY_FILE", old_key);
                         return env;
                       }(),
                       {"PROMETHEUS_URL", "PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES"},
                       dir_->path() / "refused.log",
                       std::nullopt});
  EXPECT_EQ(refused.Wait(20s), 2) << refused.Log();
  EXPECT_NE(refused.Log().find("sealed under key id " + new_id +
                               ", which is neither the current "
                               "key (" +
                               old_id + ") nor in PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES"),
            std::string::npos)
      << refused.Log();
  const auto stored = StoredChartValues();
  const auto wrong = Rotate(old_key, "");
  EXPECT_EQ(wrong.exit_code, 2) << wrong.output;
  EXPECT_NE(wrong.output.find("nothing changed"), std::string::npos) << wrong.output;
  EXPECT_NE(wrong.output.find("not a configured key"), std::string::npos) << wrong.output;
  EXPECT_EQ(StoredChartValues(), stored);
}

TEST_F(ServiceTest, ATamperedOrMovedSealedValueIsRefusedNamingIt) {
  StartProvisioner();
  std::vector<std::string> ids;
  for (const char* email : {"a@tamper.example", "b@tamper.example", "c@tamper.example"}) {
    ids.push_back(Signup(email, "Tamper"));
  }
  std::map<std::string, std::vector<std::string>> secrets;
  for (const auto& id : ids) {
    ASSERT_TRUE(WaitFor([&] { return AllWorkloadsApplied(id); }, 20s)) << Status(id).dump();
    secrets[id] = TenantSecrets(id);
    kube_->MarkWorkloadsReady(Namespace(id));
    ASSERT_TRUE(WaitForPhase(id, "Ready")) << Status(id).dump();
  }
  const auto& victim = ids[0];   // gets another customer's sealed password
  const auto& swapped = ids[1];  // its license key sealed value in its password field
  const auto& altered = ids[2];  // one character of its sealed password changed
  const auto field = [&](const std::string& id, const std::string& path) {
    return postgres_->Psql("SELECT chart_values #>> '{" + path +
                               "}' FROM deployments WHERE "
                               "customer_id = '" +
                               id + "'",
                           database_);
  };
  const auto set_password = [&](const std::string& id, std::string value) {
    while (!value.empty() && value.back() == '\n') value.pop_back();
    postgres_->Psql(
        "UPDATE deployments SET chart_values = jsonb_set(chart_values, "
        "'{postgres,password}', to_jsonb('" +
            value + "'::text)) WHERE customer_id = '" + id + "'",
        database_);
  };
  set_password(victim, field(ids[1], "postgres,password"));
  set_password(swapped, field(swapped, "license,key"));
  auto changed = field(altered, "postgres,password");
  ASSERT_TRUE(provisioner::SecretBox::IsSealed(changed)) << changed;
  changed[changed.size() / 2 + 20] = changed[changed.size() / 2 + 20] == 'x' ? 'y' : 'x';
  set_password(altered, changed);

  // The next resync of each fails, naming the value, and renders nothing from it.
  for (const auto& id : ids) {
    ASSERT_TRUE(WaitForPhase(id, "Failed")) << Status(id).dump();
    const auto message = Status(id)["message"].get<std::string>();
    EXPECT_NE(message.find("chart value postgres.password of customer " + id), std::string::npos)
        << message;
    EXPECT_NE(message.find("does not authenticate"), std::string::npos) << message;
    EXPECT_EQ(TenantSecrets(id), secrets[id]) << "the cluster's Secret was changed";
  }
  // An upgrade would write the values back without the secret: refused.
  const auto upgrade = Post("/api/customers/" + victim + "/deployment/upgrade",
                            R"({"values": {"ingress": {"enabled": false}}})", true);
  EXPECT_EQ(upgrade.status, 409) << upgrade.body;
  EXPECT_NE(upgrade.body.find("does not authenticate"), std::string::npos) << upgrade.body;
  // A purge needs no secrets and still goes through (the suspension, which renders, fails).
  EXPECT_EQ(Admin("DELETE", "/api/customers/" + victim + "/deployment").status, 202);
  EXPECT_EQ(Admin("DELETE", "/api/customers/" + victim + "/deployment?purge=true").status, 202);
  ASSERT_TRUE(WaitForPhase(victim, "Deleted")) << Status(victim).dump();
  provisioner_->Stop(SIGTERM);
  const auto log = provisioner_->Log();
  for (const auto& [id, values] : secrets) {
    for (const auto& secret : values) EXPECT_EQ(log.find(secret), std::string::npos) << id;
  }
}

}  // namespace
}  // namespace billing::testbed
