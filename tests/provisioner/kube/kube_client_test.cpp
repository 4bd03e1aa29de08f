// The provisioner's Kubernetes API client against KubeApiDouble (a loopback test double of
// kube-apiserver), and the double's own API semantics; plus the pure parts: kubeconfig parsing,
// in-cluster credentials, resource paths and workload readiness.
#include "kube_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "kube_api_double.h"
#include "readiness.h"
#include "testbed.h"

namespace billing::provisioner {
namespace {

using nlohmann::json;
using testbed::KubeApiDouble;
using namespace std::chrono_literals;

// ------------------------------------------------------------------------------------------------
// Objects

json NamespaceObject(const std::string& name) {
  return {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}};
}

json ConfigMap(const std::string& ns, const std::string& name, const json& data) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"data", data}};
}

json Workload(const std::string& kind, const std::string& ns, const std::string& name, int replicas,
              const std::string& image) {
  json spec = {{"replicas", replicas},
               {"selector", {{"matchLabels", {{"app", name}}}}},
               {"template",
                {{"metadata", {{"labels", {{"app", name}}}}},
                 {"spec", {{"containers", {{{"name", "main"}, {"image", image}}}}}}}}};
  if (kind == "StatefulSet") spec["serviceName"] = name;
  return {{"apiVersion", "apps/v1"},
          {"kind", kind},
          {"metadata", {{"name", name}, {"namespace", ns}, {"labels", {{"app", name}}}}},
          {"spec", spec}};
}

std::string WriteText(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  return path.string();
}

// Retries come fast in tests; BackoffGrowsExponentially and RetryAfterIsHonouredUpToTheCap
// check the waits themselves.
KubeRetryPolicy FastRetries(int max_attempts = 5) {
  KubeRetryPolicy policy;
  policy.max_attempts = max_attempts;
  policy.initial_backoff = 1ms;
  policy.max_backoff = 10ms;
  policy.request_timeout = 10s;
  return policy;
}

// A file descriptor, closed on destruction.
class Socket {
 public:
  Socket() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {}
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

// Answers every connection with one canned HTTP response, as a proxy in front of the API server
// might: not a Status object.
class CannedServer {
 public:
  explicit CannedServer(std::string response) : response_(std::move(response)) {
    sockaddr_in address = Loopback(0);
    socklen_t length = sizeof address;
    if (::bind(listener_.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_.fd(), 8) != 0 ||
        ::getsockname(listener_.fd(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("CannedServer: cannot listen");
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedServer() {
    ::shutdown(listener_.fd(), SHUT_RDWR);  // makes accept() fail, ending Serve()
    thread_.join();
  }
  CannedServer(const CannedServer&) = delete;
  CannedServer& operator=(const CannedServer&) = delete;

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }

 private:
  void Serve() {
    for (;;) {
      Socket connection(::accept(listener_.fd(), nullptr, nullptr));
      if (connection.fd() < 0) return;
      ++connections_;
      std::string request;
      std::array<char, 4096> buffer{};
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(connection.fd(), buffer.data(), buffer.size(), 0);
        if (n <= 0) break;
        request.append(buffer.data(), static_cast<std::size_t>(n));
      }
      (void)::send(connection.fd(), response_.data(), response_.size(), MSG_NOSIGNAL);
    }
  }

  Socket listener_;
  std::string response_;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::thread thread_;
};

std::string CannedResponse(const std::string& status_line, const std::string& body) {
  return "HTTP/1.1 " + status_line +
         "\r\nContent-Type: text/html\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

TEST(KubeClientAnswersTest, ANonStatusErrorBodyIsReportedTruncated) {
  const std::string page = "<html>bad gateway" + std::string(1000, '.') + "</html>";
  CannedServer proxy(CannedResponse("502 Bad Gateway", page));
  KubeCredentials credentials;
  credentials.server = proxy.Url();
  KubeClient client(credentials, "provisioner", FastRetries(2));
  try {
    client.Get("v1", "Namespace", "", "default");
    FAIL() << "expected KubeApiError";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 502);
    EXPECT_EQ(e.reason(), "");
    EXPECT_EQ(e.api_message().rfind("<html>bad gateway", 0), 0u) << e.api_message();
    EXPECT_LT(e.api_message().size(), 400u);
    EXPECT_TRUE(e.retryable());
  }
  EXPECT_EQ(proxy.connections(), 2);  // 502 is retried
}

TEST(KubeClientAnswersTest, ASuccessThatIsNotJsonIsAnError) {
  CannedServer proxy(CannedResponse("200 OK", "<html>login page</html>"));
  KubeCredentials credentials;
  credentials.server = proxy.Url();
  KubeClient client(credentials, "provisioner", FastRetries(3));
  try {
    client.Get("v1", "Namespace", "", "default");
    FAIL() << "expected KubeApiError";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 200);
    EXPECT_NE(e.api_message().find("not a JSON object"), std::string::npos) << e.api_message();
  }
  EXPECT_EQ(proxy.connections(), 1);
}

// ------------------------------------------------------------------------------------------------
// Fixture

struct Exchange {
  std::string method;
  int status;
  double seconds;
};

class KubeClientTest : public ::testing::Test {
 protected:
  KubeCredentials Credentials(const std::string& token) const {
    KubeCredentials credentials;
    credentials.server = api_.Url();
    credentials.bearer_token = token;
    return credentials;
  }

  std::unique_ptr<KubeClient> Client(const std::string& manager = "provisioner",
                                     KubeRetryPolicy policy = FastRetries()) {
    return std::make_unique<KubeClient>(
        Credentials(api_.token()), manager, policy,
        [this](const std::string& method, int status, double seconds) {
          exchanges_.push_back({method, status, seconds});
        });
  }

  std::vector<int> ObservedStatuses() const {
    std::vector<int> out;
    for (const auto& exchange : exchanges_) out.push_back(exchange.status);
    return out;
  }

  KubeApiDouble api_;
  std::vector<Exchange> exchanges_;
};

// ------------------------------------------------------------------------------------------------
// Apply, Get

TEST_F(KubeClientTest, ApplyCreatesThenMergesWhatEachManagerApplied) {
  auto provisioner = Client("provisioner");
  const json ns = provisioner->Apply(NamespaceObject("customer-1"));
  EXPECT_EQ(ns["status"]["phase"], "Active");
  EXPECT_FALSE(ns["metadata"]["uid"].get<std::string>().empty());

  const json created = provisioner->Apply(ConfigMap("customer-1", "settings", {{"a", "1"}}));
  EXPECT_EQ(created["data"], json({{"a", "1"}}));
  EXPECT_EQ(created["metadata"]["generation"], 1);
  EXPECT_EQ(api_.Requests().back().status, 201);

  // The request is a server-side apply, forced, under the client's field manager.
  const auto request = api_.Requests().back();
  EXPECT_EQ(request.method, "PATCH");
  EXPECT_EQ(request.path, "/api/v1/namespaces/customer-1/configmaps/settings");
  EXPECT_EQ(request.query, "fieldManager=provisioner&force=true");
  EXPECT_EQ(request.content_type, "application/apply-patch+yaml");
  EXPECT_EQ(json::parse(request.body), ConfigMap("customer-1", "settings", {{"a", "1"}}));

  // Another manager's fields are merged in, not replacing the first one's.
  auto operator_client = Client("operator");
  const json merged = operator_client->Apply(ConfigMap("customer-1", "settings", {{"b", "2"}}));
  EXPECT_EQ(merged["data"], json({{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(api_.Requests().back().status, 200);
  EXPECT_EQ(merged["metadata"]["uid"], created["metadata"]["uid"]);

  // A field a manager no longer applies goes away; the other manager's stay.
  const json dropped = provisioner->Apply(ConfigMap("customer-1", "settings", {{"c", "3"}}));
  EXPECT_EQ(dropped["data"], json({{"b", "2"}, {"c", "3"}}));
  EXPECT_EQ(api_.Object("v1", "ConfigMap", "customer-1", "settings"), dropped);
  EXPECT_EQ(api_.WriteCount("v1", "ConfigMap", "customer-1", "settings"), 3);
}

TEST_F(KubeClientTest, IdenticalApplyChangesNothing) {
  auto client = Client();
  client->Apply(NamespaceObject("customer-2"));
  const json workload = Workload("Deployment", "customer-2", "api", 2, "api:1");
  const json first = client->Apply(workload);
  const json second = client->Apply(workload);
  EXPECT_EQ(second["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);
  EXPECT_EQ(second["metadata"]["generation"], 1);
  EXPECT_EQ(second, first);
  EXPECT_EQ(api_.WriteCount("apps/v1", "Deployment", "customer-2", "api"), 1);
  EXPECT_EQ(api_.CountRequests("PATCH", "/deployments/api"), 2);
}

TEST_F(KubeClientTest, GenerationGrowsOnlyWhenTheSpecChanges) {
  auto client = Client();
  client->Apply(NamespaceObject("customer-3"));
  json workload = Workload("Deployment", "customer-3", "api", 1, "api:1");
  const json v1 = client->Apply(workload);

  workload["metadata"]["labels"]["tier"] = "backend";  // metadata only
  const json v2 = client->Apply(workload);
  EXPECT_NE(v2["metadata"]["resourceVersion"], v1["metadata"]["resourceVersion"]);
  EXPECT_EQ(v2["metadata"]["generation"], 1);
  EXPECT_EQ(v2["metadata"]["labels"]["tier"], "backend");

  workload["spec"]["replicas"] = 3;
  const json v3 = client->Apply(workload);
  EXPECT_EQ(v3["metadata"]["generation"], 2);
  EXPECT_EQ(v3["spec"]["replicas"], 3);

  // A status written by a controller is a write, but not a new generation.
  ASSERT_TRUE(api_.SetStatus("apps/v1", "Deployment", "customer-3", "api", {{"replicas", 3}}));
  const auto v4 = client->Get("apps/v1", "Deployment", "customer-3", "api");
  ASSERT_TRUE(v4.has_value());
  EXPECT_NE((*v4)["metadata"]["resourceVersion"], v3["metadata"]["resourceVersion"]);
  EXPECT_EQ((*v4)["metadata"]["generation"], 2);
  EXPECT_EQ((*v4)["status"]["replicas"], 3);
  // A status in an apply body is ignored, as for every resource with a status subresource.
  workload["status"] = {{"replicas", 99}};
  EXPECT_EQ(client->Apply(workload)["status"]["replicas"], 3);
}

TEST_F(KubeClientTest, ForceTakesFieldsOverFromAnotherManager) {
  auto provisioner = Client("provisioner");
  auto autoscaler = Client("autoscaler");
  provisioner->Apply(NamespaceObject("customer-4"));
  const json workload = Workload("Deployment", "customer-4", "api", 1, "api:1");
  provisioner->Apply(workload);
  json scaled = {{"apiVersion", "apps/v1"},
                 {"kind", "Deployment"},
                 {"metadata", {{"name", "api"}, {"namespace", "customer-4"}}},
                 {"spec", {{"replicas", 4}}}};
  EXPECT_EQ(autoscaler->Apply(scaled)["spec"]["replicas"], 4);
  EXPECT_EQ(api_.Requests().back().status, 200);  // forced: no conflict
  // The provisioner lost spec.replicas, so its unchanged apply is a change: it takes it back.
  const json back = provisioner->Apply(workload);
  EXPECT_EQ(back["spec"]["replicas"], 1);
  EXPECT_EQ(api_.WriteCount("apps/v1", "Deployment", "customer-4", "api"), 3);
}

// The client's paths and the double's routes are written independently; they must agree.
TEST_F(KubeClientTest, EveryKindTheRendererMakesCanBeAppliedAndRead) {
  auto client = Client();
  client->Apply(NamespaceObject("kinds"));
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"v1", "ResourceQuota"},
      {"v1", "Secret"},
      {"v1", "ConfigMap"},
      {"v1", "Service"},
      {"v1", "ServiceAccount"},
      {"networking.k8s.io/v1", "NetworkPolicy"},
      {"networking.k8s.io/v1", "Ingress"},
      {"apps/v1", "StatefulSet"},
      {"apps/v1", "Deployment"},
      {"monitoring.coreos.com/v1", "ServiceMonitor"}};
  for (const auto& [api_version, kind] : kinds) {
    const json object = {{"apiVersion", api_version},
                         {"kind", kind},
                         {"metadata", {{"name", "x"}, {"namespace", "kinds"}}}};
    EXPECT_EQ(client->Apply(object)["kind"], kind);
    EXPECT_TRUE(client->Get(api_version, kind, "kinds", "x").has_value()) << kind;
    EXPECT_TRUE(api_.Object(api_version, kind, "kinds", "x").has_value()) << kind;
  }
  EXPECT_EQ(api_.ObjectsIn("kinds").size(), kinds.size());
}

TEST_F(KubeClientTest, GetReturnsTheObjectOrNulloptOn404) {
  auto client = Client();
  client->Apply(NamespaceObject("customer-5"));
  const json created = client->Apply(ConfigMap("customer-5", "present", {{"k", "v"}}));
  const auto found = client->Get("v1", "ConfigMap", "customer-5", "present");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, created);
  EXPECT_FALSE(client->Get("v1", "ConfigMap", "customer-5", "absent").has_value());
  EXPECT_FALSE(client->Get("v1", "ConfigMap", "no-such-namespace", "present").has_value());
  EXPECT_FALSE(client->Get("v1", "Namespace", "", "no-such-namespace").has_value());
  EXPECT_EQ(ObservedStatuses(), (std::vector<int>{201, 201, 200, 404, 404, 404}));
}

TEST_F(KubeClientTest, ApplyIntoAMissingNamespaceFailsWithTheApiMessage) {
  auto client = Client();
  try {
    client->Apply(ConfigMap("nowhere", "settings", {{"k", "v"}}));
    FAIL() << "expected KubeApiError";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_EQ(e.reason(), "NotFound");
    EXPECT_EQ(e.api_message(), "namespaces \"nowhere\" not found");
    EXPECT_FALSE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("PATCH /api/v1/namespaces/nowhere/configmaps/settings"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(api_.CountRequests("PATCH", ""), 1);  // not retried
  EXPECT_TRUE(api_.ObjectsIn("nowhere").empty());
}

// ------------------------------------------------------------------------------------------------
// Retries

class RetriedStatusTest : public KubeClientTest, public ::testing::WithParamInterface<int> {};

TEST_P(RetriedStatusTest, IsRetriedUntilItSucceeds) {
  const int code = GetParam();
  auto client = Client();
  client->Apply(NamespaceObject("customer-6"));
  api_.InjectFailures("PATCH", "/configmaps/settings", code, 2, "try again later");
  const json applied = client->Apply(ConfigMap("customer-6", "settings", {{"k", "v"}}));
  EXPECT_EQ(applied["data"]["k"], "v");
  EXPECT_EQ(api_.CountRequests("PATCH", "/configmaps/settings"), 3);
  EXPECT_EQ(ObservedStatuses(), (std::vector<int>{201, code, code, 201}));
  for (const auto& exchange : exchanges_) {
    EXPECT_EQ(exchange.method, "PATCH");
    EXPECT_GE(exchange.seconds, 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Statuses, RetriedStatusTest, ::testing::Values(409, 429, 500, 503));

TEST_F(KubeClientTest, GetAndDeleteAreRetriedToo) {
  auto client = Client();
  client->Apply(NamespaceObject("customer-7"));
  api_.InjectFailures("GET", "/namespaces/customer-7", 500, 1, "etcd hiccup");
  EXPECT_TRUE(client->Get("v1", "Namespace", "", "customer-7").has_value());
  api_.InjectFailures("DELETE", "/namespaces/customer-7", 429, 1, "slow down");
  EXPECT_TRUE(client->DeleteNamespace("customer-7"));
  EXPECT_EQ(api_.CountRequests("GET", ""), 2);
  EXPECT_EQ(api_.CountRequests("DELETE", ""), 2);
}

TEST_F(KubeClientTest, AStepDeadlineEndsRequestsAndRetriesOfAnApiThatStopsAnswering) {
  auto client = Client("provisioner", FastRetries(5));
  client->Apply(NamespaceObject("customer-9"));
  api_.HoldRequests("", 0);  // from now on nothing is answered
  client->SetDeadline(std::chrono::steady_clock::now() + 500ms);
  try {
    client->Get("v1", "Namespace", "", "customer-9");
    ADD_FAILURE() << "a held request returned";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 0) << e.what();
  }
  // One attempt, cut off by the deadline: none of the four retries left was started.
  EXPECT_EQ(api_.HeldRequests(), 1);
  api_.ReleaseHeldRequests();
  // Past the deadline nothing is sent at all.
  const int gets = api_.CountRequests("GET", "");
  try {
    client->Get("v1", "Namespace", "", "customer-9");
    ADD_FAILURE() << "a request after the deadline was sent";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 0);
    EXPECT_NE(std::string(e.what()).find("deadline"), std::string::npos) << e.what();
  }
  EXPECT_EQ(api_.CountRequests("GET", ""), gets);
  client->SetDeadline(std::nullopt);
  EXPECT_TRUE(client->Get("v1", "Namespace", "", "customer-9").has_value());
}

TEST_F(KubeClientTest, FailuresBeyondMaxAttemptsThrowWithStatusAndMessage) {
  auto client = Client("provisioner", FastRetries(3));
  client->Apply(NamespaceObject("customer-8"));
  api_.InjectFailures("PATCH", "/configmaps/", 503, -1, "etcdserver: leader changed");
  try {
    client->Apply(ConfigMap("customer-8", "settings", {{"k", "v"}}));
    FAIL() << "expected KubeApiError";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 503);
    EXPECT_EQ(e.reason(), "ServiceUnavailable");
    EXPECT_EQ(e.api_message(), "etcdserver: leader changed");
    EXPECT_TRUE(e.retryable());
  }
  EXPECT_EQ(api_.CountRequests("PATCH", "/configmaps/"), 3);
  api_.ClearFailures();
  EXPECT_EQ(client->Apply(ConfigMap("customer-8", "settings", {{"k", "v"}}))["data"]["k"], "v");
}

TEST_F(KubeClientTest, WrongTokenIs401AndNotRetried) {
  KubeClient client(Credentials("not-the-token"), "provisioner", FastRetries());
  try {
    client.Get("v1", "Namespace", "", "default");
    FAIL() << "expected KubeApiError";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 401);
    EXPECT_EQ(e.reason(), "Unauthorized");
    EXPECT_EQ(e.api_message(), "Unauthorized");
  }
  KubeClient anonymous(Credentials(""), "provisioner", FastRetries());
  EXPECT_THROW(anonymous.Get("v1", "Namespace", "", "default"), KubeApiError);
  EXPECT_EQ(api_.CountRequests("GET", ""), 2);
}

TEST_F(KubeClientTest, InvalidObjectIs422AndNotRetried) {
  auto client = Client();
  client->Apply(NamespaceObject("customer-9"));
  try {
    client->Apply(ConfigMap("customer-9", "Bad_Name", {{"k", "v"}}));
    FAIL() << "expected KubeApiError";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 422);
    EXPECT_EQ(e.reason(), "Invalid");
    EXPECT_NE(e.api_message().find("ConfigMap \"Bad_Name\" is invalid: metadata.name"),
              std::string::npos)
        << e.api_message();
  }
  EXPECT_EQ(api_.CountRequests("PATCH", "Bad_Name"), 1);
  // 403 fails at once too.
  api_.InjectFailures("PATCH", "", 403, -1, "not allowed");
  EXPECT_THROW(client->Apply(ConfigMap("customer-9", "fine", {})), KubeApiError);
  EXPECT_EQ(api_.CountRequests("PATCH", "/configmaps/fine"), 1);
}

TEST_F(KubeClientTest, SlowResponseBeyondTheTimeoutIsATransportError) {
  KubeRetryPolicy policy = FastRetries(2);
  policy.request_timeout = 200ms;
  auto client = Client("provisioner", policy);
  api_.SetResponseDelay(5s);
  const auto start = std::chrono::steady_clock::now();
  try {
    client->Get("v1", "Namespace", "", "default");
    FAIL() << "expected KubeApiError";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 0);
    EXPECT_TRUE(e.retryable());
    EXPECT_NE(e.api_message().find("timed out"), std::string::npos) << e.api_message();
  }
  // Both attempts gave up on their own, long before the server would have answered.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
  EXPECT_EQ(ObservedStatuses(), (std::vector<int>{0, 0}));
  api_.SetResponseDelay(0ms);
  EXPECT_FALSE(client->Get("v1", "Namespace", "", "default").has_value());
}

TEST_F(KubeClientTest, BackoffGrowsExponentially) {
  KubeRetryPolicy policy = FastRetries(5);
  policy.initial_backoff = 40ms;
  policy.max_backoff = 160ms;
  auto client = Client("provisioner", policy);
  api_.InjectFailures("GET", "", 500, 4, "etcd hiccup");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(client->Get("v1", "Namespace", "", "default").has_value());
  // Waits of at least half of 40, 80, 160 and 160 ms: 220 ms. A constant backoff would wait at
  // most 4 x 40 = 160 ms.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 220ms);
  EXPECT_EQ(ObservedStatuses(), (std::vector<int>{500, 500, 500, 500, 404}));
}

TEST_F(KubeClientTest, RetryAfterIsHonouredUpToTheCap) {
  KubeRetryPolicy policy = FastRetries();
  policy.max_backoff = 300ms;
  auto client = Client("provisioner", policy);
  api_.InjectFailures("GET", "", 429, 1, "too many requests", /*retry_after_seconds=*/5);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(client->Get("v1", "Namespace", "", "default").has_value());
  const auto waited = std::chrono::steady_clock::now() - start;
  // Without Retry-After the wait would be about 1 ms; with it, 5 s capped at 300 ms.
  EXPECT_GE(waited, 300ms);
  EXPECT_LT(waited, 3s);
  EXPECT_EQ(ObservedStatuses(), (std::vector<int>{429, 404}));
}

TEST_F(KubeClientTest, ConnectionRefusedIsATransportError) {
  KubeCredentials credentials;
  credentials.server = "http://127.0.0.1:" + std::to_string(testbed::FreePort());
  KubeClient client(credentials, "provisioner", FastRetries(2));
  try {
    client.Get("v1", "Namespace", "", "default");
    FAIL() << "expected KubeApiError";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 0);
    EXPECT_NE(std::string(e.what()).find("transport error"), std::string::npos) << e.what();
  }
}

// ------------------------------------------------------------------------------------------------
// Namespace deletion

TEST_F(KubeClientTest, DeletingANamespaceRemovesEverythingInIt) {
  auto client = Client();
  client->Apply(NamespaceObject("customer-10"));
  client->Apply(ConfigMap("customer-10", "settings", {{"k", "v"}}));
  client->Apply(Workload("Deployment", "customer-10", "api", 1, "api:1"));
  client->Apply(NamespaceObject("customer-11"));
  client->Apply(ConfigMap("customer-11", "settings", {{"k", "v"}}));
  ASSERT_EQ(api_.ObjectsIn("customer-10").size(), 2u);

  EXPECT_TRUE(client->DeleteNamespace("customer-10"));
  const auto request = api_.Requests().back();
  EXPECT_EQ(request.method, "DELETE");
  EXPECT_EQ(request.path, "/api/v1/namespaces/customer-10");
  EXPECT_EQ(json::parse(request.body)["propagationPolicy"], "Background");

  EXPECT_FALSE(api_.NamespaceExists("customer-10"));
  EXPECT_TRUE(api_.ObjectsIn("customer-10").empty());
  EXPECT_FALSE(client->Get("v1", "ConfigMap", "customer-10", "settings").has_value());
  EXPECT_EQ(api_.Namespaces(), std::vector<std::string>{"customer-11"});
  EXPECT_EQ(api_.ObjectsIn("customer-11").size(), 1u);
  EXPECT_FALSE(client->DeleteNamespace("customer-10"));  // 404
}

TEST_F(KubeClientTest, ADeletedNamespaceIsTerminatingUntilFinalized) {
  auto client = Client();
  client->Apply(NamespaceObject("customer-12"));
  client->Apply(ConfigMap("customer-12", "settings", {{"k", "v"}}));
  api_.SetNamespaceFinalizationDelay(1500ms);
  EXPECT_TRUE(client->DeleteNamespace("customer-12"));

  const auto terminating = client->Get("v1", "Namespace", "", "customer-12");
  ASSERT_TRUE(terminating.has_value());
  EXPECT_EQ((*terminating)["status"]["phase"], "Terminating");
  EXPECT_TRUE((*terminating)["metadata"].contains("deletionTimestamp"));
  EXPECT_TRUE(client->Get("v1", "ConfigMap", "customer-12", "settings").has_value());

  // Nothing new may appear in it.
  try {
    client->Apply(ConfigMap("customer-12", "late", {{"k", "v"}}));
    FAIL() << "expected KubeApiError";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 403);
    EXPECT_EQ(e.reason(), "Forbidden");
    EXPECT_NE(e.api_message().find("because it is being terminated"), std::string::npos)
        << e.api_message();
  }
  // A second delete meets the API's 409 and still counts as deleted, without retries.
  const int deletes = api_.CountRequests("DELETE", "");
  EXPECT_TRUE(client->DeleteNamespace("customer-12"));
  EXPECT_EQ(api_.CountRequests("DELETE", ""), deletes + 1);
  EXPECT_EQ(api_.Requests().back().method, "GET");  // the confirmation
  EXPECT_EQ(ObservedStatuses().at(ObservedStatuses().size() - 2), 409);

  EXPECT_TRUE(testbed::WaitFor([&] { return !api_.NamespaceExists("customer-12"); }, 10s));
  EXPECT_TRUE(api_.ObjectsIn("customer-12").empty());
  EXPECT_FALSE(client->DeleteNamespace("customer-12"));
}

// ------------------------------------------------------------------------------------------------
// Deleting single objects (prune)

TEST_F(KubeClientTest, DeleteRemovesOneObjectAndTreatsNotFoundAsGone) {
  auto client = Client();
  client->Apply(NamespaceObject("customer-20"));
  client->Apply(ConfigMap("customer-20", "settings", {{"k", "v"}}));
  client->Apply(ConfigMap("customer-20", "other", {{"k", "v"}}));
  const json ingress = {{"apiVersion", "networking.k8s.io/v1"},
                        {"kind", "Ingress"},
                        {"metadata", {{"name", "public"}, {"namespace", "customer-20"}}}};
  client->Apply(ingress);
  exchanges_.clear();

  EXPECT_TRUE(client->Delete("networking.k8s.io/v1", "Ingress", "customer-20", "public"));
  const auto request = api_.Requests().back();
  EXPECT_EQ(request.method, "DELETE");
  EXPECT_EQ(request.path, "/apis/networking.k8s.io/v1/namespaces/customer-20/ingresses/public");
  EXPECT_EQ(request.content_type, "application/json");
  EXPECT_EQ(json::parse(request.body)["propagationPolicy"], "Background");
  EXPECT_FALSE(api_.Object("networking.k8s.io/v1", "Ingress", "customer-20", "public").has_value());

  EXPECT_TRUE(client->Delete("v1", "ConfigMap", "customer-20", "settings"));
  EXPECT_FALSE(api_.Object("v1", "ConfigMap", "customer-20", "settings").has_value());
  EXPECT_TRUE(api_.Object("v1", "ConfigMap", "customer-20", "other").has_value());
  EXPECT_TRUE(api_.NamespaceExists("customer-20"));

  // Already gone, or never there: false, at once, without retries.
  EXPECT_FALSE(client->Delete("v1", "ConfigMap", "customer-20", "settings"));
  EXPECT_FALSE(client->Delete("monitoring.coreos.com/v1", "ServiceMonitor", "nowhere", "x"));
  EXPECT_EQ(ObservedStatuses(), (std::vector<int>{200, 200, 404, 404}));
  for (const auto& exchange : exchanges_) EXPECT_EQ(exchange.method, "DELETE");
}

TEST_F(KubeClientTest, DeleteRefusesNamespacesAndUnknownKinds) {
  auto client = Client();
  client->Apply(NamespaceObject("customer-21"));
  const int requests = api_.CountRequests("", "");
  EXPECT_THROW(client->Delete("v1", "Namespace", "", "customer-21"), std::invalid_argument);
  EXPECT_THROW(client->Delete("v1", "Pod", "customer-21", "x"), std::invalid_argument);
  EXPECT_THROW(client->Delete("v1", "ConfigMap", "customer-21", "../x"), std::invalid_argument);
  EXPECT_THROW(client->Delete("v1", "ConfigMap", "", "x"), std::invalid_argument);
  EXPECT_EQ(api_.CountRequests("", ""), requests) << "nothing may be sent";
  EXPECT_TRUE(api_.NamespaceExists("customer-21"));
}

TEST_F(KubeClientTest, DeleteIsRetriedLikeEveryCall) {
  auto client = Client("provisioner", FastRetries(3));
  client->Apply(NamespaceObject("customer-22"));
  client->Apply(ConfigMap("customer-22", "settings", {{"k", "v"}}));
  api_.InjectFailures("DELETE", "/configmaps/settings", 503, 2, "etcdserver: leader changed");
  EXPECT_TRUE(client->Delete("v1", "ConfigMap", "customer-22", "settings"));
  EXPECT_EQ(api_.CountRequests("DELETE", "/configmaps/settings"), 3);

  client->Apply(ConfigMap("customer-22", "settings", {{"k", "v"}}));
  api_.InjectFailures("DELETE", "/configmaps/settings", 403, -1,
                      "configmaps \"settings\" is forbidden: User cannot delete resource");
  try {
    client->Delete("v1", "ConfigMap", "customer-22", "settings");
    FAIL() << "expected KubeApiError";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 403);
    EXPECT_NE(e.api_message().find("cannot delete"), std::string::npos) << e.api_message();
  }
  EXPECT_EQ(api_.CountRequests("DELETE", "/configmaps/settings"), 4) << "403 is not retried";
  api_.ClearFailures();
  api_.InjectFailures("DELETE", "/configmaps/settings", 500, -1, "still broken");
  EXPECT_THROW(client->Delete("v1", "ConfigMap", "customer-22", "settings"), KubeApiError);
  EXPECT_EQ(api_.CountRequests("DELETE", "/configmaps/settings"), 7) << "3 attempts, then fail";
  EXPECT_TRUE(api_.Object("v1", "ConfigMap", "customer-22", "settings").has_value());
}

TEST_F(KubeClientTest, DoubleRemovesObjectsBehindTheClientsBack) {
  auto client = Client();
  client->Apply(NamespaceObject("customer-23"));
  client->Apply(ConfigMap("customer-23", "settings", {{"k", "v"}}));
  const int requests = api_.CountRequests("", "");
  EXPECT_TRUE(api_.RemoveObject("v1", "ConfigMap", "customer-23", "settings"));
  EXPECT_EQ(api_.CountRequests("", ""), requests) << "a test-control call is not a request";
  EXPECT_EQ(api_.CountRequests("DELETE", "customer-23"), 0);
  EXPECT_FALSE(client->Get("v1", "ConfigMap", "customer-23", "settings").has_value());
  EXPECT_TRUE(api_.NamespaceExists("customer-23"));
  EXPECT_EQ(client->Get("v1", "Namespace", "", "customer-23")->at("status")["phase"], "Active");
  EXPECT_FALSE(api_.RemoveObject("v1", "ConfigMap", "customer-23", "settings"));
  EXPECT_THROW(api_.RemoveObject("v1", "Namespace", "", "customer-23"), std::invalid_argument);
  EXPECT_THROW(api_.RemoveObject("v1", "Pod", "customer-23", "x"), std::invalid_argument);
  EXPECT_TRUE(api_.NamespaceExists("customer-23"));
  // Applied again, it is a new object.
  EXPECT_EQ(
      client->Apply(ConfigMap("customer-23", "settings", {{"k", "v"}}))["metadata"]["generation"],
      1);
  EXPECT_EQ(api_.Requests().back().status, 201);
}

// ------------------------------------------------------------------------------------------------
// Readiness, end to end

TEST_F(KubeClientTest, WorkloadsBecomeReadyWhenTheirControllersSaySo) {
  auto client = Client();
  client->Apply(NamespaceObject("customer-13"));
  json deployment = Workload("Deployment", "customer-13", "api", 2, "api:1");
  client->Apply(deployment);
  client->Apply(Workload("StatefulSet", "customer-13", "postgres", 1, "postgres:15"));
  const auto readiness = [&](const std::string& kind, const std::string& name) {
    return ReadinessOf(*client->Get("apps/v1", kind, "customer-13", name));
  };
  EXPECT_FALSE(readiness("Deployment", "api").ready);
  EXPECT_FALSE(readiness("StatefulSet", "postgres").ready);

  api_.MarkWorkloadsReady("customer-13");
  const auto api_ready = readiness("Deployment", "api");
  EXPECT_TRUE(api_ready.ready) << api_ready.reason;
  EXPECT_EQ(api_ready.desired_replicas, 2);
  EXPECT_EQ(api_ready.ready_replicas, 2);
  EXPECT_TRUE(readiness("StatefulSet", "postgres").ready)
      << readiness("StatefulSet", "postgres").reason;

  // A new spec is a new generation the controller has not observed yet.
  deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "api:2";
  client->Apply(deployment);
  const auto rolling = readiness("Deployment", "api");
  EXPECT_FALSE(rolling.ready);
  EXPECT_NE(rolling.reason.find("generation 2"), std::string::npos) << rolling.reason;
}

TEST_F(KubeClientTest, ConcurrentClientsAreServedConsistently) {
  Client()->Apply(NamespaceObject("customer-14"));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        KubeClient client(Credentials(api_.token()), "worker-" + std::to_string(t), FastRetries());
        for (int i = 0; i < kPerThread; ++i) {
          client.Apply(ConfigMap("customer-14", "cm-" + std::to_string(t) + "-" + std::to_string(i),
                                 {{"i", std::to_string(i)}}));
        }
      } catch (const std::exception&) {
        ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  const auto objects = api_.ObjectsIn("customer-14");
  ASSERT_EQ(objects.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::set<std::string> versions;
  for (const auto& object : objects) {
    versions.insert(object["metadata"]["resourceVersion"].get<std::string>());
  }
  EXPECT_EQ(versions.size(), objects.size());  // every write got its own resourceVersion
}

// ------------------------------------------------------------------------------------------------
// Credentials

TEST_F(KubeClientTest, TokenFileIsReadForEveryRequest) {
  testbed::TempDir dir("kube-token");
  const auto token_path = dir.path() / "token";
  WriteText(token_path, "stale-token\n");
  KubeCredentials credentials;
  credentials.server = api_.Url();
  credentials.bearer_token = "ignored-when-a-file-is-set";
  credentials.bearer_token_file = token_path.string();
  KubeClient client(credentials, "provisioner", FastRetries());
  try {
    client.Get("v1", "Namespace", "", "default");
    FAIL() << "expected KubeApiError";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 401);
  }
  WriteText(token_path, api_.token() + "\n");  // rotated
  EXPECT_FALSE(client.Get("v1", "Namespace", "", "default").has_value());
}

TEST_F(KubeClientTest, KubeconfigWrittenByTheDoubleWorksThroughKUBECONFIG) {
  testbed::TempDir dir("kube-config");
  const auto path = dir.path() / "config";
  api_.WriteKubeconfig(path);
  const std::string path_text = path.string() + ":/nonexistent/second";
  const auto credentials = LoadKubeCredentials([&](const char* name) -> const char* {
    return std::string(name) == "KUBECONFIG" ? path_text.c_str() : nullptr;
  });
  ASSERT_TRUE(credentials.ok()) << credentials.error();
  EXPECT_EQ(credentials.value().server, api_.Url());
  EXPECT_EQ(credentials.value().bearer_token, api_.token());
  KubeClient client(credentials.value(), "provisioner", FastRetries());
  EXPECT_EQ(client.Apply(NamespaceObject("from-kubeconfig"))["metadata"]["name"],
            "from-kubeconfig");
}

// ------------------------------------------------------------------------------------------------
// The double's own API semantics, with raw HTTP (the client never sends these).

struct RawAnswer {
  int status = 0;
  json body;
};

RawAnswer Raw(const KubeApiDouble& api, const std::string& method, const std::string& target,
              const std::string& content_type, const std::string& body) {
  const std::string url = api.Url();
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  Socket socket;
  sockaddr_in address = Loopback(port);
  if (::connect(socket.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    throw std::runtime_error("cannot connect to the double");
  }
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                        "Authorization: Bearer " + api.token() + "\r\nConnection: close\r\n" +
                        "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (!content_type.empty()) request += "Content-Type: " + content_type + "\r\n";
  request += "\r\n" + body;
  if (::send(socket.fd(), request.data(), request.size(), 0) !=
      static_cast<ssize_t>(request.size())) {
    throw std::runtime_error("cannot send to the double");
  }
  std::string response;
  std::array<char, 4096> buffer{};
  ssize_t n = 0;
  while ((n = ::recv(socket.fd(), buffer.data(), buffer.size(), 0)) > 0) {
    response.append(buffer.data(), static_cast<std::size_t>(n));
  }
  RawAnswer answer;
  answer.status = std::stoi(response.substr(response.find(' ') + 1, 3));
  answer.body = json::parse(response.substr(response.find("\r\n\r\n") + 4));
  return answer;
}

constexpr const char* kApply = "application/apply-patch+yaml";

void ExpectStatus(const RawAnswer& answer, int code, const std::string& reason,
                  const std::string& message_part) {
  EXPECT_EQ(answer.status, code);
  EXPECT_EQ(answer.body["kind"], "Status");
  EXPECT_EQ(answer.body["apiVersion"], "v1");
  EXPECT_EQ(answer.body["status"], "Failure");
  EXPECT_EQ(answer.body["code"], code);
  EXPECT_EQ(answer.body["reason"], reason);
  EXPECT_NE(answer.body["message"].get<std::string>().find(message_part), std::string::npos)
      << answer.body.dump();
}

TEST_F(KubeClientTest, DoubleRefusesMalformedApplies) {
  Client()->Apply(NamespaceObject("raw"));
  const std::string path = "/api/v1/namespaces/raw/configmaps/settings";
  const std::string body = ConfigMap("raw", "settings", {{"k", "v"}}).dump();
  ExpectStatus(Raw(api_, "PATCH", path + "?fieldManager=m", "application/merge-patch+json", body),
               415, "UnsupportedMediaType", "unknown format");
  ExpectStatus(Raw(api_, "PATCH", path, kApply, body), 422, "Invalid",
               "fieldManager: Required value");
  ExpectStatus(Raw(api_, "PATCH", path + "?fieldManager=m", kApply, "data: [unclosed"), 400,
               "BadRequest", "error decoding YAML");
  ExpectStatus(
      Raw(api_, "PATCH", path + "?fieldManager=m", kApply, ConfigMap("raw", "other", {}).dump()),
      400, "BadRequest", "does not match the name on the URL");
  ExpectStatus(Raw(api_, "PATCH", path + "?fieldManager=m", kApply,
                   ConfigMap("elsewhere", "settings", {}).dump()),
               400, "BadRequest", "namespace of the provided object does not match");
  json wrong_version = ConfigMap("raw", "settings", {});
  wrong_version["apiVersion"] = "apps/v1";
  ExpectStatus(Raw(api_, "PATCH", path + "?fieldManager=m", kApply, wrong_version.dump()), 400,
               "BadRequest", "the API version in the data (apps/v1)");
  ExpectStatus(Raw(api_, "POST", path, "application/json", body), 405, "MethodNotAllowed", "");
  ExpectStatus(Raw(api_, "GET", "/api/v1/namespaces/raw/pods/x", "", ""), 404, "NotFound",
               "could not find the requested resource");
  EXPECT_FALSE(api_.Object("v1", "ConfigMap", "raw", "settings").has_value());
}

TEST_F(KubeClientTest, DoubleReportsConflictsWithoutForce) {
  Client("owner")->Apply(NamespaceObject("raw"));
  const std::string path = "/api/v1/namespaces/raw/configmaps/settings";
  Client("owner")->Apply(ConfigMap("raw", "settings", {{"k", "mine"}}));
  const RawAnswer conflict = Raw(api_, "PATCH", path + "?fieldManager=intruder", kApply,
                                 ConfigMap("raw", "settings", {{"k", "theirs"}}).dump());
  ExpectStatus(conflict, 409, "Conflict", "conflict with \"owner\": .data.k");
  // The same value is shared ownership, not a conflict.
  EXPECT_EQ(Raw(api_, "PATCH", path + "?fieldManager=intruder", kApply,
                ConfigMap("raw", "settings", {{"k", "mine"}}).dump())
                .status,
            200);
  // A stale resourceVersion in the body is a precondition failure.
  json stale = ConfigMap("raw", "settings", {{"k", "mine"}});
  stale["metadata"]["resourceVersion"] = "1";
  ExpectStatus(Raw(api_, "PATCH", path + "?fieldManager=owner", kApply, stale.dump()), 409,
               "Conflict", "the object has been modified");
  EXPECT_EQ((*api_.Object("v1", "ConfigMap", "raw", "settings"))["data"]["k"], "mine");
}

json StatefulSet(const std::string& ns, const std::string& service_name,
                 const std::string& storage) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "StatefulSet"},
          {"metadata", {{"name", "postgres"}, {"namespace", ns}}},
          {"spec",
           {{"serviceName", service_name},
            {"replicas", 1},
            {"selector", {{"matchLabels", {{"app", "postgres"}}}}},
            {"template",
             {{"metadata", {{"labels", {{"app", "postgres"}}}}},
              {"spec", {{"containers", {{{"name", "postgres"}, {"image", "postgres:15"}}}}}}}},
            {"volumeClaimTemplates",
             {{{"metadata", {{"name", "data"}}},
               {"spec", {{"resources", {{"requests", {{"storage", storage}}}}}}}}}}}}};
}

// As kube-apiserver's update validation: a StatefulSet's serviceName, selector and
// volumeClaimTemplates, and a Deployment's selector, cannot change once created.
TEST_F(KubeClientTest, DoubleRefusesChangesToImmutableFields) {
  auto client = Client();
  client->Apply(NamespaceObject("immutable"));
  client->Apply(StatefulSet("immutable", "postgres", "1Gi"));
  auto scaled = StatefulSet("immutable", "postgres", "1Gi");
  scaled["spec"]["replicas"] = 2;
  EXPECT_EQ(client->Apply(scaled)["spec"]["replicas"], 2) << "replicas may change";
  for (const auto& changed : {StatefulSet("immutable", "postgres-headless", "1Gi"),
                              StatefulSet("immutable", "postgres", "5Gi")}) {
    try {
      client->Apply(changed);
      ADD_FAILURE() << "applied " << changed["spec"].dump();
    } catch (const KubeApiError& e) {
      EXPECT_EQ(e.status(), 422);
      EXPECT_NE(e.api_message().find("updates to statefulset spec for fields other than"),
                std::string::npos)
          << e.api_message();
    }
  }
  EXPECT_EQ(api_.ImmutableFieldRejections(), 2);
  EXPECT_EQ(
      (*api_.Object("apps/v1", "StatefulSet", "immutable", "postgres"))["spec"]["serviceName"],
      "postgres");

  json deployment = {{"apiVersion", "apps/v1"},
                     {"kind", "Deployment"},
                     {"metadata", {{"name", "api"}, {"namespace", "immutable"}}},
                     {"spec", {{"selector", {{"matchLabels", {{"app", "api"}}}}}}}};
  client->Apply(deployment);
  deployment["spec"]["selector"]["matchLabels"]["app"] = "api-v2";
  try {
    client->Apply(deployment);
    ADD_FAILURE() << "changed a Deployment's selector";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 422);
    EXPECT_NE(e.api_message().find("spec.selector: Invalid value"), std::string::npos);
  }
}

// Server-side apply merges keyed lists (containers by name, env by name, ports by port and
// protocol) item by item: another manager's env variable survives the provisioner's re-apply,
// and an item the provisioner stops applying goes away while the other manager's stays.
TEST_F(KubeClientTest, DoubleMergesKeyedListsItemByItem) {
  auto provisioner = Client("provisioner");
  provisioner->Apply(NamespaceObject("lists"));
  auto deployment = [](json env, json ports) {
    return json{
        {"apiVersion", "apps/v1"},
        {"kind", "Deployment"},
        {"metadata", {{"name", "api"}, {"namespace", "lists"}}},
        {"spec",
         {{"selector", {{"matchLabels", {{"app", "api"}}}}},
          {"template",
           {{"spec",
             {{"containers",
               {{{"name", "api"}, {"image", "api:1"}, {"env", env}, {"ports", ports}}}}}}}}}}};
  };
  provisioner->Apply(deployment({{{"name", "A"}, {"value", "1"}}, {{"name", "B"}, {"value", "2"}}},
                                {{{"containerPort", 3000}}}));
  // Another manager adds an env variable and a port to the same container.
  Client("operator")
      ->Apply(deployment({{{"name", "EXTRA"}, {"value", "x"}}},
                         {{{"containerPort", 9090}, {"protocol", "TCP"}}}));
  auto live = *api_.Object("apps/v1", "Deployment", "lists", "api");
  auto container = live["spec"]["template"]["spec"]["containers"];
  ASSERT_EQ(container.size(), 1u) << container.dump();
  EXPECT_EQ(container[0]["env"].size(), 3u) << container.dump();
  EXPECT_EQ(container[0]["ports"].size(), 2u) << container.dump();
  EXPECT_EQ(container[0]["image"], "api:1");

  // The provisioner drops B and changes A: EXTRA and port 9090 stay, B goes.
  provisioner->Apply(deployment({{{"name", "A"}, {"value", "10"}}}, {{{"containerPort", 3000}}}));
  live = *api_.Object("apps/v1", "Deployment", "lists", "api");
  container = live["spec"]["template"]["spec"]["containers"];
  std::map<std::string, std::string> env;
  for (const auto& item : container[0]["env"]) env[item["name"]] = item["value"];
  EXPECT_EQ(env, (std::map<std::string, std::string>{{"A", "10"}, {"EXTRA", "x"}}));
  EXPECT_EQ(container[0]["ports"].size(), 2u) << container.dump();
}

// With the provisioner's ClusterRole enforced, a verb it does not grant is 403 and recorded.
TEST_F(KubeClientTest, DoubleEnforcesTheProvisionersRbac) {
  api_.EnforceRbac(std::string(BILLING_SOURCE_DIR) + "/manifests/provisioner/20-rbac.yaml");
  auto client = Client();
  client->Apply(NamespaceObject("rbac"));
  client->Apply(ConfigMap("rbac", "settings", {{"a", "1"}}));
  EXPECT_TRUE(client->Get("v1", "ConfigMap", "rbac", "settings").has_value());
  EXPECT_EQ(api_.RbacDenials(), std::vector<std::string>{});
  // ConfigMaps are never pruned, so the role grants no delete on them.
  try {
    client->Delete("v1", "ConfigMap", "rbac", "settings");
    ADD_FAILURE() << "deleted a ConfigMap";
  } catch (const KubeApiError& e) {
    EXPECT_EQ(e.status(), 403);
    EXPECT_NE(e.api_message().find("cannot delete resource \"configmaps\""), std::string::npos)
        << e.api_message();
  }
  EXPECT_EQ(api_.RbacDenials(), std::vector<std::string>{"delete configmaps rbac/settings"});
  EXPECT_TRUE(client->Delete("networking.k8s.io/v1", "Ingress", "rbac", "web") == false)
      << "delete is granted on Ingresses (pruning); absent is fine";
}

TEST_F(KubeClientTest, DoubleDeletesSingleObjects) {
  auto client = Client();
  client->Apply(NamespaceObject("raw"));
  client->Apply(ConfigMap("raw", "settings", {{"k", "v"}}));
  const RawAnswer deleted =
      Raw(api_, "DELETE", "/api/v1/namespaces/raw/configmaps/settings", "", "");
  EXPECT_EQ(deleted.status, 200);
  EXPECT_EQ(deleted.body["status"], "Success");
  EXPECT_FALSE(api_.Object("v1", "ConfigMap", "raw", "settings").has_value());
  ExpectStatus(Raw(api_, "DELETE", "/api/v1/namespaces/raw/configmaps/settings", "", ""), 404,
               "NotFound", "configmaps \"settings\" not found");
  EXPECT_TRUE(api_.NamespaceExists("raw"));
}

TEST(KubeApiDoubleTest, ControlMethodsRefuseKindsItDoesNotServe) {
  KubeApiDouble api;
  EXPECT_THROW(api.Object("v1", "Deployment", "ns", "x"), std::invalid_argument);
  EXPECT_EQ(api.WriteCount("apps/v1", "Deployment", "ns", "x"), 0);
  EXPECT_FALSE(api.SetStatus("apps/v1", "Deployment", "ns", "x", json::object()));
}

// ------------------------------------------------------------------------------------------------
// ResourcePath

TEST(ResourcePathTest, EveryKindTheRendererMakes) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"v1", "ResourceQuota", "/api/v1/namespaces/ns/resourcequotas/x"},
      {"v1", "Secret", "/api/v1/namespaces/ns/secrets/x"},
      {"v1", "ConfigMap", "/api/v1/namespaces/ns/configmaps/x"},
      {"v1", "Service", "/api/v1/namespaces/ns/services/x"},
      {"v1", "ServiceAccount", "/api/v1/namespaces/ns/serviceaccounts/x"},
      {"networking.k8s.io/v1", "NetworkPolicy",
       "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/x"},
      {"networking.k8s.io/v1", "Ingress", "/apis/networking.k8s.io/v1/namespaces/ns/ingresses/x"},
      {"apps/v1", "StatefulSet", "/apis/apps/v1/namespaces/ns/statefulsets/x"},
      {"apps/v1", "Deployment", "/apis/apps/v1/namespaces/ns/deployments/x"},
      {"monitoring.coreos.com/v1", "ServiceMonitor",
       "/apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/x"},
  };
  for (const auto& [api_version, kind, path] : cases) {
    EXPECT_EQ(ResourcePath(api_version, kind, "ns", "x"), path) << kind;
  }
  EXPECT_EQ(ResourcePath("v1", "Namespace", "", "customer-1"), "/api/v1/namespaces/customer-1");
}

TEST(ResourcePathTest, RefusesWhatItCannotAddress) {
  EXPECT_THROW(ResourcePath("v1", "Pod", "ns", "x"), std::invalid_argument);
  EXPECT_THROW(ResourcePath("apps/v1beta1", "Deployment", "ns", "x"), std::invalid_argument);
  EXPECT_THROW(ResourcePath("v1", "Deployment", "ns", "x"), std::invalid_argument);
  EXPECT_THROW(ResourcePath("v1", "ConfigMap", "", "x"), std::invalid_argument);
  EXPECT_THROW(ResourcePath("v1", "Namespace", "ns", "x"), std::invalid_argument);
  EXPECT_THROW(ResourcePath("v1", "ConfigMap", "ns", ""), std::invalid_argument);
  EXPECT_THROW(ResourcePath("v1", "ConfigMap", "ns", "a/b"), std::invalid_argument);
  EXPECT_THROW(ResourcePath("v1", "ConfigMap", "ns", ".."), std::invalid_argument);
  EXPECT_THROW(ResourcePath("v1", "ConfigMap", "n?s", "x"), std::invalid_argument);
}

// ------------------------------------------------------------------------------------------------
// ParseKubeconfig

constexpr const char* kPem = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
constexpr const char* kKeyPem =
    "-----BEGIN PRIVATE KEY-----\nMIIBfake\n-----END PRIVATE KEY-----\n";
// The two above in base64, as kubeconfig *-data fields hold them (the test does not link the
// project's base64 code, so this also checks the client against an independent encoder).
const std::string kPemBase64 =
    "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmYWtlCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";
const std::string kKeyPemBase64 =
    "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUJmYWtlCi0tLS0tRU5EIFBSSVZBVEUgS0VZLS0tLS0K";

std::string Kubeconfig(const std::string& cluster, const std::string& user,
                       const std::string& current = "current-context: dev\n") {
  return "apiVersion: v1\nkind: Config\n" + current +
         "contexts:\n- name: dev\n  context:\n    cluster: dev-cluster\n    user: dev-user\n"
         "- name: other\n  context:\n    cluster: dev-cluster\n    user: dev-user\n"
         "clusters:\n- name: dev-cluster\n  cluster:\n" +
         cluster + "users:\n- name: dev-user\n  user:\n" + user;
}

TEST(ParseKubeconfigTest, TokenAndServer) {
  const auto parsed =
      ParseKubeconfig(Kubeconfig("    server: https://10.1.2.3:6443/\n", "    token: abc\n"), "");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed.value().server, "https://10.1.2.3:6443");
  EXPECT_EQ(parsed.value().bearer_token, "abc");
  EXPECT_TRUE(parsed.value().ca_pem.empty());
  EXPECT_FALSE(parsed.value().insecure_skip_tls_verify);
}

TEST(ParseKubeconfigTest, CertificateDataIsDecoded) {
  const std::string cluster =
      "    server: https://k8s:6443\n    certificate-authority-data: " + kPemBase64 + "\n";
  const std::string user = "    client-certificate-data: " + kPemBase64 +
                           "\n    client-key-data: " + kKeyPemBase64 + "\n";
  const auto parsed = ParseKubeconfig(Kubeconfig(cluster, user), "");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed.value().ca_pem, kPem);
  EXPECT_EQ(parsed.value().client_certificate_pem, kPem);
  EXPECT_EQ(parsed.value().client_key_pem, kKeyPem);
  EXPECT_TRUE(parsed.value().bearer_token.empty());
}

TEST(ParseKubeconfigTest, RelativePathsAreRelativeToTheKubeconfig) {
  testbed::TempDir dir("kubeconfig");
  std::filesystem::create_directories(dir.path() / "certs");
  WriteText(dir.path() / "certs" / "ca.crt", kPem);
  WriteText(dir.path() / "certs" / "client.crt", kPem);
  WriteText(dir.path() / "certs" / "client.key", kKeyPem);
  WriteText(dir.path() / "token", "file-token\n");
  const auto parsed = ParseKubeconfig(
      Kubeconfig("    server: https://k8s\n    certificate-authority: certs/ca.crt\n",
                 "    tokenFile: token\n    client-certificate: certs/client.crt\n"
                 "    client-key: " +
                     (dir.path() / "certs" / "client.key").string() + "\n"),
      dir.path().string());
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed.value().ca_pem, kPem);
  EXPECT_EQ(parsed.value().bearer_token_file, (dir.path() / "token").string());
  EXPECT_EQ(parsed.value().client_certificate_pem, kPem);
  EXPECT_EQ(parsed.value().client_key_pem, kKeyPem);
}

TEST(ParseKubeconfigTest, InsecureSkipTlsVerify) {
  const auto parsed = ParseKubeconfig(
      Kubeconfig("    server: https://k8s\n    insecure-skip-tls-verify: true\n", "    token: t\n"),
      "");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_TRUE(parsed.value().insecure_skip_tls_verify);
}

void ExpectKubeconfigError(const std::string& text, const std::string& field,
                           const std::string& base_dir = "") {
  const auto parsed = ParseKubeconfig(text, base_dir);
  ASSERT_FALSE(parsed.ok()) << "expected an error naming " << field;
  EXPECT_NE(parsed.error().find(field), std::string::npos) << parsed.error();
}

TEST(ParseKubeconfigTest, ErrorsNameTheField) {
  const std::string server = "    server: https://k8s\n";
  ExpectKubeconfigError(Kubeconfig(server, "    token: t\n", ""), "current-context");
  ExpectKubeconfigError(Kubeconfig(server, "    token: t\n", "current-context: prod\n"),
                        "contexts: no entry named \"prod\"");
  ExpectKubeconfigError(Kubeconfig("    insecure-skip-tls-verify: true\n", "    token: t\n"),
                        "clusters[dev-cluster].cluster.server: missing");
  ExpectKubeconfigError(Kubeconfig("    server: ftp://k8s\n", "    token: t\n"),
                        "clusters[dev-cluster].cluster.server");
  ExpectKubeconfigError(
      Kubeconfig(server + "    certificate-authority-data: '!!notbase64'\n", "    token: t\n"),
      "clusters[dev-cluster].cluster.certificate-authority-data: not valid base64");
  ExpectKubeconfigError(Kubeconfig(server + "    certificate-authority: missing.crt\n", ""),
                        "clusters[dev-cluster].cluster.certificate-authority: cannot read "
                        "/nonexistent-dir/missing.crt",
                        "/nonexistent-dir");
  ExpectKubeconfigError(Kubeconfig(server, "    tokenFile: /nonexistent/token\n"),
                        "users[dev-user].user.tokenFile");
  ExpectKubeconfigError(Kubeconfig(server, "    exec:\n      command: aws\n"),
                        "users[dev-user].user.exec: not supported");
  ExpectKubeconfigError(Kubeconfig(server, "    client-certificate-data: " + kPemBase64 + "\n"),
                        "users[dev-user].user.client-key: missing");
  ExpectKubeconfigError(Kubeconfig(server + "    insecure-skip-tls-verify: maybe\n", ""),
                        "insecure-skip-tls-verify: must be true or false");
  ExpectKubeconfigError(
      "current-context: dev\ncontexts:\n- name: dev\n  context:\n"
      "    cluster: gone\n",
      "clusters: no entry named \"gone\"");
  ExpectKubeconfigError("{not: [valid", "not valid YAML");
}

// ------------------------------------------------------------------------------------------------
// HTTPS: the CA and client certificate go to libcurl from memory.

// A throwaway PKI made with the openssl CLI: a CA, a server certificate for 127.0.0.1 and a
// client certificate, all signed by the CA.
struct TestPki {
  testbed::TempDir dir{"kube-pki"};
  std::filesystem::path Path(const std::string& name) const { return dir.path() / name; }
  std::string Read(const std::string& name) const {
    std::ifstream in(Path(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  TestPki() {
    Run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", Path("ca.key"), "-out", Path("ca.crt"), "-days", "2", "-subj",
         "/CN=kube-test-ca"});
    Issue("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\n");
    Issue("client", "/CN=provisioner", "extendedKeyUsage=clientAuth\n");
    // CivetWeb reads the certificate and its key from one file.
    WriteText(Path("server.pem"), Read("server.crt") + Read("server.key"));
  }

  void Issue(const std::string& name, const std::string& subject, const std::string& extensions) {
    WriteText(Path(name + ".ext"), extensions);
    Run({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", Path(name + ".key"), "-out", Path(name + ".csr"), "-subj", subject});
    Run({"openssl", "x509", "-req", "-in", Path(name + ".csr"), "-CA", Path("ca.crt"), "-CAkey",
         Path("ca.key"), "-CAcreateserial", "-out", Path(name + ".crt"), "-days", "2", "-extfile",
         Path(name + ".ext")});
  }

  static void Run(const std::vector<std::filesystem::path>& argv) {
    std::vector<std::string> args;
    for (const auto& arg : argv) args.push_back(arg.string());
    const auto result = testbed::RunCommand(args);
    if (result.exit_code != 0) throw std::runtime_error("openssl failed: " + result.output);
  }
};

bool Accepts(int port) {
  Socket socket;
  sockaddr_in address = Loopback(port);
  return ::connect(socket.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
}

// `openssl s_server -www` on 127.0.0.1: it answers any GET with an HTML status page, so an HTTP
// status from it proves the TLS handshake succeeded. (KubeApiDouble cannot serve TLS: Debian 12's
// CivetWeb 1.15 crashes with OpenSSL 3.)
class TlsServer {
 public:
  TlsServer(const TestPki& pki, bool require_client_certificate) : port_(testbed::FreePort()) {
    testbed::Process::Options options;
    options.argv = {"openssl", "s_server",
                    "-accept", "127.0.0.1:" + std::to_string(port_),
                    "-cert",   pki.Path("server.crt").string(),
                    "-key",    pki.Path("server.key").string(),
                    "-CAfile", pki.Path("ca.crt").string(),
                    "-www"};
    // -Verify (upper case) refuses clients without a certificate the CA signed.
    if (require_client_certificate) options.argv.insert(options.argv.end(), {"-Verify", "1"});
    options.log_path = pki.Path("s_server-" + std::to_string(port_) + ".log");
    process_ = std::make_unique<testbed::Process>(options);
    if (!testbed::WaitFor([&] { return Accepts(port_); }, 10s)) {
      throw std::runtime_error("openssl s_server did not start: " + process_->Log());
    }
  }
  std::string Url() const { return "https://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  std::unique_ptr<testbed::Process> process_;
};

// The status of the one exchange: an HTTP status if TLS worked (s_server's page is not JSON, so
// the client throws anyway), 0 if it did not.
KubeApiError GetError(const KubeCredentials& credentials) {
  try {
    KubeClient(credentials, "provisioner", FastRetries(1)).Get("v1", "Namespace", "", "x");
  } catch (const KubeApiError& e) {
    return e;
  }
  throw std::runtime_error("expected KubeApiError");
}

TEST(KubeClientTlsTest, VerifiesTheServerWithTheCaGivenFromMemory) {
  TestPki pki;
  TlsServer server(pki, /*require_client_certificate=*/false);
  KubeCredentials with_ca;
  with_ca.server = server.Url();
  with_ca.ca_pem = pki.Read("ca.crt");
  with_ca.bearer_token = "token";
  const KubeApiError handshake_ok = GetError(with_ca);
  EXPECT_EQ(handshake_ok.status(), 200) << handshake_ok.what();
  EXPECT_NE(handshake_ok.api_message().find("not a JSON object"), std::string::npos);

  // The system CAs do not know the test CA.
  KubeCredentials without_ca = with_ca;
  without_ca.ca_pem.clear();
  const KubeApiError unverified = GetError(without_ca);
  EXPECT_EQ(unverified.status(), 0);
  EXPECT_NE(unverified.api_message().find("certificate"), std::string::npos)
      << unverified.api_message();

  KubeCredentials insecure = without_ca;
  insecure.insecure_skip_tls_verify = true;
  EXPECT_EQ(GetError(insecure).status(), 200);

  // A CA that did not sign the server's certificate is refused too.
  KubeCredentials wrong_ca = with_ca;
  wrong_ca.ca_pem = pki.Read("client.crt");
  EXPECT_EQ(GetError(wrong_ca).status(), 0);
}

TEST(KubeClientTlsTest, OffersTheClientCertificateGivenFromMemory) {
  TestPki pki;
  TlsServer server(pki, /*require_client_certificate=*/true);
  KubeCredentials with_certificate;
  with_certificate.server = server.Url();
  with_certificate.ca_pem = pki.Read("ca.crt");
  with_certificate.client_certificate_pem = pki.Read("client.crt");
  with_certificate.client_key_pem = pki.Read("client.key");
  const KubeApiError accepted = GetError(with_certificate);
  EXPECT_EQ(accepted.status(), 200) << accepted.what();

  KubeCredentials without_certificate = with_certificate;
  without_certificate.client_certificate_pem.clear();
  without_certificate.client_key_pem.clear();
  const KubeApiError refused = GetError(without_certificate);
  EXPECT_EQ(refused.status(), 0) << refused.what();
}

// ------------------------------------------------------------------------------------------------
// LoadKubeCredentials

TEST(LoadKubeCredentialsTest, InClusterServiceAccount) {
  testbed::TempDir dir("serviceaccount");
  WriteText(dir.path() / "token", "sa-token");
  WriteText(dir.path() / "ca.crt", kPem);
  const std::map<std::string, std::string> env = {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                                  {"KUBERNETES_SERVICE_PORT", "443"}};
  const auto getenv = [&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  const auto loaded = LoadKubeCredentials(getenv, dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded.value().server, "https://10.96.0.1:443");
  EXPECT_EQ(loaded.value().bearer_token_file, (dir.path() / "token").string());
  EXPECT_TRUE(loaded.value().bearer_token.empty());  // read per request, never cached
  EXPECT_EQ(loaded.value().ca_pem, kPem);

  const std::map<std::string, std::string> ipv6 = {{"KUBERNETES_SERVICE_HOST", "fd00::1"},
                                                   {"KUBERNETES_SERVICE_PORT", "443"}};
  const auto v6 = LoadKubeCredentials(
      [&](const char* name) -> const char* {
        const auto it = ipv6.find(name);
        return it == ipv6.end() ? nullptr : it->second.c_str();
      },
      dir.path());
  ASSERT_TRUE(v6.ok()) << v6.error();
  EXPECT_EQ(v6.value().server, "https://[fd00::1]:443");

  std::filesystem::remove(dir.path() / "token");
  const auto no_token = LoadKubeCredentials(getenv, dir.path());
  ASSERT_FALSE(no_token.ok());
  EXPECT_NE(no_token.error().find((dir.path() / "token").string()), std::string::npos)
      << no_token.error();
}

TEST(LoadKubeCredentialsTest, NeitherKubeconfigNorCluster) {
  const auto loaded =
      LoadKubeCredentials([](const char*) -> const char* { return nullptr; }, "/nonexistent");
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().find("KUBERNETES_SERVICE_HOST"), std::string::npos) << loaded.error();
  EXPECT_NE(loaded.error().find("KUBECONFIG"), std::string::npos) << loaded.error();
}

TEST(LoadKubeCredentialsTest, KubeconfigErrorsNameTheFile) {
  const auto missing = LoadKubeCredentials([](const char* name) -> const char* {
    return std::string(name) == "KUBECONFIG" ? "/nonexistent/kubeconfig" : nullptr;
  });
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("/nonexistent/kubeconfig"), std::string::npos) << missing.error();

  testbed::TempDir dir("kubeconfig-bad");
  const std::string path = WriteText(dir.path() / "config", "apiVersion: v1\nkind: Config\n");
  const auto bad = LoadKubeCredentials([&](const char* name) -> const char* {
    return std::string(name) == "KUBECONFIG" ? path.c_str() : nullptr;
  });
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find(path + ": kubeconfig: current-context"), std::string::npos)
      << bad.error();
}

// ------------------------------------------------------------------------------------------------
// ReadinessOf

json DeploymentStatus(int spec_replicas, int generation, const json& status) {
  json d = {{"apiVersion", "apps/v1"},
            {"kind", "Deployment"},
            {"metadata", {{"name", "api"}, {"generation", generation}}},
            {"spec", {{"replicas", spec_replicas}}},
            {"status", status}};
  return d;
}

TEST(ReadinessOfTest, Deployment) {
  const json complete = {{"observedGeneration", 2},
                         {"replicas", 3},
                         {"updatedReplicas", 3},
                         {"readyReplicas", 3},
                         {"availableReplicas", 3}};
  const auto ready = ReadinessOf(DeploymentStatus(3, 2, complete));
  EXPECT_TRUE(ready.ready) << ready.reason;
  EXPECT_FALSE(ready.failed);
  EXPECT_EQ(ready.desired_replicas, 3);
  EXPECT_EQ(ready.ready_replicas, 3);

  json stale = complete;
  stale["observedGeneration"] = 1;
  const auto unobserved = ReadinessOf(DeploymentStatus(3, 2, stale));
  EXPECT_FALSE(unobserved.ready);
  EXPECT_NE(unobserved.reason.find("observe generation 2"), std::string::npos);

  json updating = complete;
  updating["updatedReplicas"] = 1;
  EXPECT_EQ(ReadinessOf(DeploymentStatus(3, 2, updating)).reason, "1 of 3 replicas updated");

  json old_pods = complete;
  old_pods["replicas"] = 4;
  EXPECT_EQ(ReadinessOf(DeploymentStatus(3, 2, old_pods)).reason,
            "1 old replicas pending termination");

  json unavailable = complete;
  unavailable["availableReplicas"] = 2;
  unavailable["readyReplicas"] = 2;
  const auto not_available = ReadinessOf(DeploymentStatus(3, 2, unavailable));
  EXPECT_FALSE(not_available.ready);
  EXPECT_EQ(not_available.reason, "1 of 3 replicas not available");
  EXPECT_EQ(not_available.ready_replicas, 2);

  json deadline = unavailable;
  deadline["conditions"] = {
      {{"type", "Progressing"}, {"status", "False"}, {"reason", "ProgressDeadlineExceeded"}}};
  const auto failed = ReadinessOf(DeploymentStatus(3, 2, deadline));
  EXPECT_FALSE(failed.ready);
  EXPECT_TRUE(failed.failed);

  // spec.replicas defaults to 1; no status at all is not ready.
  json no_replicas = DeploymentStatus(1, 1, json::object());
  no_replicas["spec"].erase("replicas");
  const auto fresh = ReadinessOf(no_replicas);
  EXPECT_FALSE(fresh.ready);
  EXPECT_EQ(fresh.desired_replicas, 1);
  no_replicas["status"] = {{"observedGeneration", 1},
                           {"replicas", 1},
                           {"updatedReplicas", 1},
                           {"readyReplicas", 1},
                           {"availableReplicas", 1}};
  EXPECT_TRUE(ReadinessOf(no_replicas).ready);

  // Scaled to zero and observed: done.
  EXPECT_TRUE(ReadinessOf(DeploymentStatus(0, 4, {{"observedGeneration", 4}})).ready);
}

json StatefulSet(int spec_replicas, const json& status) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "StatefulSet"},
          {"metadata", {{"name", "postgres"}, {"generation", 1}}},
          {"spec", {{"replicas", spec_replicas}}},
          {"status", status}};
}

TEST(ReadinessOfTest, StatefulSet) {
  const json complete = {{"observedGeneration", 1},   {"replicas", 2},
                         {"readyReplicas", 2},        {"updatedReplicas", 2},
                         {"currentRevision", "pg-a"}, {"updateRevision", "pg-a"}};
  EXPECT_TRUE(ReadinessOf(StatefulSet(2, complete)).ready);

  json not_ready = complete;
  not_ready["readyReplicas"] = 1;
  EXPECT_EQ(ReadinessOf(StatefulSet(2, not_ready)).reason, "1 of 2 replicas not ready");

  json rolling = complete;
  rolling["updateRevision"] = "pg-b";
  const auto mid_roll = ReadinessOf(StatefulSet(2, rolling));
  EXPECT_FALSE(mid_roll.ready);
  EXPECT_NE(mid_roll.reason.find("pg-b"), std::string::npos);

  json not_updated = complete;
  not_updated["updatedReplicas"] = 1;
  EXPECT_FALSE(ReadinessOf(StatefulSet(2, not_updated)).ready);

  // Without revisions (an older API server) the counts decide.
  json no_revisions = complete;
  no_revisions.erase("currentRevision");
  no_revisions["updateRevision"] = "pg-b";
  EXPECT_TRUE(ReadinessOf(StatefulSet(2, no_revisions)).ready);

  // A partitioned rollout is done when the pods above the partition are updated.
  json partitioned = rolling;
  partitioned["updatedReplicas"] = 1;
  json sts = StatefulSet(2, partitioned);
  sts["spec"]["updateStrategy"] = {{"type", "RollingUpdate"},
                                   {"rollingUpdate", {{"partition", 1}}}};
  EXPECT_TRUE(ReadinessOf(sts).ready) << ReadinessOf(sts).reason;

  json unobserved = complete;
  unobserved.erase("observedGeneration");
  EXPECT_FALSE(ReadinessOf(StatefulSet(2, unobserved)).ready);
}

TEST(ReadinessOfTest, OtherKindsAreAnError) {
  EXPECT_THROW(ReadinessOf({{"kind", "ConfigMap"}}), std::invalid_argument);
  EXPECT_THROW(ReadinessOf(json::array()), std::invalid_argument);
}

}  // namespace
}  // namespace billing::provisioner
