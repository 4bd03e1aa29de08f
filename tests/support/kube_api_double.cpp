#include "kube_api_double.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

namespace billing::testbed {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// The API server's own limit on a request body.
constexpr std::size_t kMaxBody = 3 * 1024 * 1024;

}  // namespace

// Declared in the header (private members take it), so not in the anonymous namespace.
struct KindInfo {
  const char* api_version;
  const char* kind;
  const char* plural;
  bool namespaced;
};

namespace {

// The provisioner's kinds. Kept apart from the client's table on purpose: a typo in one of them
// shows up as a failing test instead of agreeing with itself.
constexpr std::array<KindInfo, 11> kKinds = {{
    {"v1", "Namespace", "namespaces", false},
    {"v1", "ResourceQuota", "resourcequotas", true},
    {"v1", "Secret", "secrets", true},
    {"v1", "ConfigMap", "configmaps", true},
    {"v1", "Service", "services", true},
    {"v1", "ServiceAccount", "serviceaccounts", true},
    {"networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", true},
    {"networking.k8s.io/v1", "Ingress", "ingresses", true},
    {"apps/v1", "StatefulSet", "statefulsets", true},
    {"apps/v1", "Deployment", "deployments", true},
    {"monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors", true},
}};

const KindInfo* KindByPlural(const std::string& api_version, const std::string& plural) {
  for (const auto& info : kKinds) {
    if (api_version == info.api_version && plural == info.plural) return &info;
  }
  return nullptr;
}

const KindInfo* KindByName(const std::string& api_version, const std::string& kind) {
  for (const auto& info : kKinds) {
    if (api_version == info.api_version && kind == info.kind) return &info;
  }
  return nullptr;
}

// Test-control methods name objects like the API does; a kind the double does not serve is a
// mistake in the test, not an absent object.
std::tuple<std::string, std::string, std::string, std::string> ControlKey(
    const std::string& api_version, const std::string& kind, const std::string& ns,
    const std::string& name) {
  if (KindByName(api_version, kind) == nullptr) {
    throw std::invalid_argument("KubeApiDouble does not serve " + api_version + " " + kind);
  }
  return {api_version, kind, ns, name};
}

std::string Group(const KindInfo& info) {
  const std::string_view api_version(info.api_version);
  const auto slash = api_version.find('/');
  return slash == std::string_view::npos ? std::string()
                                         : std::string(api_version.substr(0, slash));
}

// "deployments.apps", "configmaps": how the API names a resource in its messages.
std::string QualifiedResource(const KindInfo& info) {
  const std::string group = Group(info);
  return std::string(info.plural) + (group.empty() ? "" : "." + group);
}

std::string ReasonFor(int code) {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 413:
      return "RequestEntityTooLarge";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "";  // metav1.StatusReasonUnknown
  }
}

Json StatusBody(int code, const std::string& message, Json details = nullptr) {
  Json status = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", Json::object()},
                 {"status", "Failure"}, {"message", message}, {"reason", ReasonFor(code)},
                 {"code", code}};
  if (!details.is_null()) status["details"] = std::move(details);
  return status;
}

Json Details(const KindInfo& info, const std::string& name) {
  return {{"name", name}, {"group", Group(info)}, {"kind", info.plural}};
}

std::string Now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::array<char, 32> text{};
  std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text.data();
}

std::string NewUid() {
  static std::mutex mutex;
  static std::mt19937_64 random{std::random_device{}()};
  std::lock_guard lock(mutex);
  std::string hex;
  for (int i = 0; i < 2; ++i) {
    std::array<char, 17> part{};
    std::snprintf(part.data(), part.size(), "%016llx", static_cast<unsigned long long>(random()));
    hex += part.data();
  }
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// RFC 1123 label (Namespace), RFC 1035 label (Service: starts with a letter) or RFC 1123
// subdomain (everything else), as the API server validates metadata.name.
std::optional<std::string> NameError(const KindInfo& info, const std::string& name) {
  const std::string kind = info.kind;
  const bool label = kind == "Namespace" || kind == "Service";
  const std::size_t max = label ? 63 : 253;
  const bool chars_ok = std::all_of(name.begin(), name.end(), [&](char c) {
    return IsLowerAlnum(c) || c == '-' || (!label && c == '.');
  });
  const bool ends_ok = !name.empty() && IsLowerAlnum(name.front()) && IsLowerAlnum(name.back());
  const bool start_ok = kind != "Service" || (!name.empty() && std::isalpha(name.front()) != 0);
  if (chars_ok && ends_ok && start_ok && name.size() <= max) return std::nullopt;
  if (kind == "Service") {
    return "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
           "with an alphabetic character, and end with an alphanumeric character";
  }
  if (label) {
    return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
           "'-', and must start and end with an alphanumeric character";
  }
  return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
         "or '.', and must start and end with an alphanumeric character";
}

std::optional<std::string> QueryParam(const std::string& query, const char* name) {
  std::array<char, 1024> value{};
  const int length = mg_get_var(query.c_str(), query.size(), name, value.data(), value.size());
  if (length < 0) return std::nullopt;
  return std::string(value.data(), static_cast<std::size_t>(length));
}

// Null in an applied configuration means "not set".
Json WithoutNulls(const Json& value) {
  if (!value.is_object()) return value;
  Json out = Json::object();
  for (const auto& [key, item] : value.items()) {
    if (!item.is_null()) out[key] = WithoutNulls(item);
  }
  return out;
}

// Server-side apply merges the lists the API marks x-kubernetes-list-type=map item by item, by
// their keys; every other list is atomic (replaced whole). These are the keyed lists the chart
// uses, with their keys as the Kubernetes OpenAPI declares them.
std::vector<std::string> ListKeys(const std::string& field, const Json& list) {
  if (field == "containers" || field == "initContainers" || field == "env" || field == "volumes" ||
      field == "imagePullSecrets") {
    return {"name"};
  }
  if (field == "volumeMounts") return {"mountPath"};
  if (field == "ports") {
    // Container ports: containerPort + protocol; Service ports: port + protocol.
    const bool container =
        !list.empty() && list[0].is_object() && list[0].contains("containerPort");
    return {container ? "containerPort" : "port", "protocol"};
  }
  return {};
}

// The key of one item of a keyed list (protocol defaults to TCP, as the API defaults it), or null
// when the item cannot be keyed.
Json ItemKey(const std::vector<std::string>& keys, const Json& item) {
  if (!item.is_object()) return nullptr;
  Json key = Json::object();
  for (const auto& name : keys) {
    if (item.contains(name)) {
      key[name] = item[name];
    } else if (name == "protocol") {
      key[name] = "TCP";
    } else {
      return nullptr;
    }
  }
  return key;
}

bool IsKeyedList(const std::string& field, const Json& list) {
  const auto keys = ListKeys(field, list);
  if (keys.empty() || !list.is_array()) return false;
  return std::all_of(list.begin(), list.end(),
                     [&](const Json& item) { return !ItemKey(keys, item).is_null(); });
}

// Maps merge key by key, keyed lists item by item; anything else is replaced as a whole.
void MergeInto(Json& target, const Json& patch) {
  for (const auto& [key, value] : patch.items()) {
    if (value.is_object() && target.contains(key) && target[key].is_object()) {
      MergeInto(target[key], value);
    } else if (target.contains(key) && IsKeyedList(key, value) && IsKeyedList(key, target[key])) {
      const auto keys = ListKeys(key, value);
      for (const auto& item : value) {
        const Json item_key = ItemKey(keys, item);
        auto& list = target[key];
        const auto same = std::find_if(list.begin(), list.end(), [&](const Json& existing) {
          return ItemKey(keys, existing) == item_key;
        });
        if (same == list.end()) {
          list.push_back(item);
        } else {
          MergeInto(*same, item);
        }
      }
    } else {
      target[key] = value;
    }
  }
}

using FieldPath = std::vector<std::string>;

// Every leaf of an applied configuration: what a manager owns. Non-empty maps are not leaves, nor
// are keyed lists: their items are, each named by its key ("[{\"name\":\"app\"}]"), so two
// managers may own different items of one list.
void Leaves(const Json& value, FieldPath& prefix, std::map<FieldPath, Json>& out) {
  if (value.is_object() && !value.empty()) {
    for (const auto& [key, item] : value.items()) {
      prefix.push_back(key);
      if (IsKeyedList(key, item) && !item.empty()) {
        const auto keys = ListKeys(key, item);
        for (const auto& element : item) {
          prefix.push_back("[" + ItemKey(keys, element).dump() + "]");
          Leaves(element, prefix, out);
          prefix.pop_back();
        }
      } else {
        Leaves(item, prefix, out);
      }
      prefix.pop_back();
    }
    return;
  }
  if (!prefix.empty()) out[prefix] = value;
}

std::map<FieldPath, Json> Leaves(const Json& value) {
  std::map<FieldPath, Json> out;
  FieldPath prefix;
  Leaves(value, prefix, out);
  return out;
}

// Removes a field and the maps (and keyed-list items) it leaves empty.
void Erase(Json& value, const FieldPath& path, std::size_t at = 0) {
  if (value.is_array() && path[at].front() == '[') {
    const Json wanted = Json::parse(path[at].substr(1, path[at].size() - 2));
    for (auto item = value.begin(); item != value.end(); ++item) {
      if (!item->is_object()) continue;
      bool match = true;
      for (const auto& [key, key_value] : wanted.items()) {
        const Json actual = item->contains(key) ? (*item)[key] : Json("TCP");
        match = match && actual == key_value;
      }
      if (!match) continue;
      if (at + 1 == path.size()) {
        value.erase(item);
        return;
      }
      Erase(*item, path, at + 1);
      // An item left with nothing but its key is no longer owned.
      bool only_key = true;
      for (const auto& [key, unused] : item->items()) only_key = only_key && wanted.contains(key);
      if (only_key) value.erase(item);
      return;
    }
    return;
  }
  if (!value.is_object() || !value.contains(path[at])) return;
  if (at + 1 == path.size()) {
    value.erase(path[at]);
    return;
  }
  Erase(value[path[at]], path, at + 1);
  if ((value[path[at]].is_object() || value[path[at]].is_array()) && value[path[at]].empty()) {
    value.erase(path[at]);
  }
}

std::string Dotted(const FieldPath& path) {
  std::string out;
  for (const auto& part : path) out += "." + part;
  return out;
}

Json SpecPart(const Json& live) {
  Json out = live;
  out.erase("metadata");
  out.erase("status");
  return out;
}

std::string MediaType(const std::string& content_type) {
  std::string type = content_type.substr(0, content_type.find(';'));
  type.erase(
      std::remove_if(type.begin(), type.end(), [](unsigned char c) { return std::isspace(c); }),
      type.end());
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return type;
}

// Opens and closes a TCP connection to 127.0.0.1:port, nothing more.
void Poke(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::close(fd);
}

int LogCivetweb(const mg_connection*, const char* message) {
  std::fprintf(stderr, "[kube-api-double] %s\n", message);
  return 1;
}

}  // namespace

// ------------------------------------------------------------------------------------------------

struct KubeApiDouble::Stored {
  Key key;
  const KindInfo* info = nullptr;
  std::uint64_t sequence = 0;
  Json server_metadata;  // uid, creationTimestamp, generation, resourceVersion, deletionTimestamp
  std::vector<std::pair<std::string, Json>> applied;  // by field manager; last changed last
  Json status;                                        // null: none
  Json live;                                          // what GET returns
  int writes = 0;

  bool namespaced() const { return info->namespaced; }
  const std::string& ns() const { return std::get<2>(key); }
  const std::string& name() const { return std::get<3>(key); }

  Json Compose() const {
    Json merged = Json::object();
    for (const auto& [manager, config] : applied) MergeInto(merged, config);
    Json metadata = merged.contains("metadata") && merged["metadata"].is_object()
                        ? merged["metadata"]
                        : Json::object();
    metadata["name"] = name();
    if (namespaced()) metadata["namespace"] = ns();
    metadata.update(server_metadata);
    merged["apiVersion"] = info->api_version;
    merged["kind"] = info->kind;
    merged["metadata"] = std::move(metadata);
    merged.erase("status");
    if (!status.is_null()) merged["status"] = status;
    return merged;
  }
};

struct KubeApiDouble::Failure {
  std::string method;
  std::string path_substring;
  int status = 500;
  int remaining = 1;  // -1: until cleared
  std::string message;
  int retry_after_seconds = -1;
};

struct KubeApiDouble::Route {
  const KindInfo* info = nullptr;
  std::string ns;
  std::string name;
  Key key() const { return {info->api_version, info->kind, ns, name}; }
};

struct KubeApiDouble::Response {
  int status = 200;
  Json body;
  std::string extra_headers;  // complete lines, "\r\n"-terminated
};

namespace {

// "/api/v1/namespaces/x", "/api/v1/namespaces/ns/configmaps/x",
// "/apis/apps/v1/namespaces/ns/deployments/x"; anything else is not served.
std::optional<std::tuple<const KindInfo*, std::string, std::string>> ParsePath(
    const std::string& path) {
  std::vector<std::string> parts;
  for (std::size_t at = 0; at < path.size();) {
    const auto slash = path.find('/', at);
    const auto end = slash == std::string::npos ? path.size() : slash;
    if (end > at) parts.push_back(path.substr(at, end - at));
    at = end + 1;
  }
  std::size_t rest = 0;
  std::string api_version;
  if (parts.size() >= 2 && parts[0] == "api") {
    api_version = parts[1];
    rest = 2;
  } else if (parts.size() >= 3 && parts[0] == "apis") {
    api_version = parts[1] + "/" + parts[2];
    rest = 3;
  } else {
    return std::nullopt;
  }
  const std::size_t left = parts.size() - rest;
  if (left == 2 && parts[rest] == "namespaces") {
    const KindInfo* info = KindByPlural(api_version, "namespaces");
    if (info == nullptr) return std::nullopt;
    return std::make_tuple(info, std::string(), parts[rest + 1]);
  }
  if (left == 4 && parts[rest] == "namespaces") {
    const KindInfo* info = KindByPlural(api_version, parts[rest + 2]);
    if (info == nullptr || !info->namespaced) return std::nullopt;
    return std::make_tuple(info, parts[rest + 1], parts[rest + 3]);
  }
  return std::nullopt;
}

}  // namespace

void KubeApiDouble::ContextDeleter::operator()(mg_context* context) const { mg_stop(context); }

KubeApiDouble::KubeApiDouble(std::string token) : token_(std::move(token)) {
  mg_init_library(0);
  // Port 0: the kernel picks a free port, read back below, so parallel tests never collide.
  // Not const: mg_start takes `const char**`.
  std::array<const char*, 11> options = {"listening_ports",
                                         "127.0.0.1:0",
                                         "num_threads",
                                         "16",
                                         "enable_keep_alive",
                                         "yes",
                                         "keep_alive_timeout_ms",
                                         "2000",
                                         "request_timeout_ms",
                                         "30000",
                                         nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = LogCivetweb;
  context_.reset(mg_start(&callbacks, this, options.data()));
  if (!context_) throw std::runtime_error("KubeApiDouble: cannot listen on 127.0.0.1");
  mg_set_request_handler(context_.get(), "/", &KubeApiDouble::HandleRequest, this);
  std::array<mg_server_port, 2> ports{};
  if (mg_get_server_ports(context_.get(), static_cast<int>(ports.size()), ports.data()) < 1) {
    throw std::runtime_error("KubeApiDouble: no listening port");
  }
  port_ = ports[0].port;
}

KubeApiDouble::~KubeApiDouble() {
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  stopping_.notify_all();  // delayed responses go out now instead of holding mg_stop up
  // CivetWeb's listener polls with a 2 s quantum and checks the stop flag only between polls, so
  // mg_stop alone takes up to 2 s. A connection ends the poll at once; since the flag may be set
  // after a given connection arrives, keep knocking until mg_stop has returned.
  std::atomic<bool> stopped{false};
  std::thread knocker([&] {
    while (!stopped.load()) {
      Poke(port_);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  context_.reset();
  stopped = true;
  knocker.join();
}

std::string KubeApiDouble::Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

void KubeApiDouble::WriteKubeconfig(const std::filesystem::path& path) const {
  // JSON strings are valid YAML scalars, so dump() quotes safely.
  std::ofstream out(path);
  out << "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-api-double\n  cluster:\n"
      << "    server: " << Json(Url()).dump() << "\n";
  out << "users:\n- name: kube-api-double\n  user:\n    token: " << Json(token_).dump() << "\n"
      << "contexts:\n- name: kube-api-double\n  context:\n    cluster: kube-api-double\n"
      << "    user: kube-api-double\ncurrent-context: kube-api-double\n";
  if (!out.flush()) throw std::runtime_error("KubeApiDouble: cannot write " + path.string());
}

// ------------------------------------------------------------------------------------------------
// HTTP

int KubeApiDouble::HandleRequest(mg_connection* conn, void* self_ptr) {
  auto& self = *static_cast<KubeApiDouble*>(self_ptr);
  const mg_request_info* info = mg_get_request_info(conn);
  Request request;
  request.method = info->request_method;
  request.path = info->local_uri != nullptr ? info->local_uri : "";
  request.query = info->query_string != nullptr ? info->query_string : "";
  const char* content_type = mg_get_header(conn, "Content-Type");
  request.content_type = content_type != nullptr ? content_type : "";
  const char* encoding = mg_get_header(conn, "Transfer-Encoding");
  bool too_large = false;
  // Without a length or chunking a request has no body; reading would wait for the client.
  if (info->content_length > 0 || encoding != nullptr) {
    std::array<char, 16384> buffer{};
    int n = 0;
    while ((n = mg_read(conn, buffer.data(), buffer.size())) > 0) {
      if (request.body.size() + static_cast<std::size_t>(n) > kMaxBody) too_large = true;
      if (!too_large) request.body.append(buffer.data(), static_cast<std::size_t>(n));
    }
  }
  const char* authorization = mg_get_header(conn, "Authorization");
  {
    std::unique_lock lock(self.mutex_);
    auto delay = self.response_delay_;
    if (self.response_delay_max_ > delay) {
      delay += std::chrono::milliseconds(std::uniform_int_distribution<std::int64_t>(
          0, (self.response_delay_max_ - delay).count())(self.delay_draws_));
    }
    self.stopping_.wait_for(lock, delay, [&] { return self.stopped_; });
    if (self.hold_ && (self.hold_->method.empty() || self.hold_->method == request.method)) {
      if (self.hold_->pass > 0) {
        --self.hold_->pass;
      } else {
        ++self.held_;
        self.stopping_.notify_all();  // HeldRequests() waiters
        self.stopping_.wait(lock, [&] { return self.stopped_ || !self.hold_; });
        --self.held_;
      }
    }
  }
  Response response = too_large
                          ? Response{413, StatusBody(413, "the request body is too large"), ""}
                          : self.Dispatch(request, authorization != nullptr ? authorization : "");
  const std::string body = response.body.dump();
  // One write: head and body in two small writes meet Nagle and delayed ACKs (40 ms each).
  const std::string message =
      "HTTP/1.1 " + std::to_string(response.status) + " " +
      mg_get_response_code_text(conn, response.status) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nCache-Control: no-store\r\n" + response.extra_headers + "\r\n" + body;
  mg_write(conn, message.data(), message.size());
  return response.status;
}

KubeApiDouble::Response KubeApiDouble::Dispatch(const Request& request,
                                                const std::string& authorization) {
  std::lock_guard lock(mutex_);
  FinalizeNamespaces();
  Response response = Serve(request, authorization);
  // Recorded before the answer leaves, so a test that has its answer also sees the record.
  requests_.push_back(request);
  requests_.back().status = response.status;
  return response;
}

KubeApiDouble::Response KubeApiDouble::Serve(const Request& request,
                                             const std::string& authorization) {
  for (auto it = failures_.begin(); it != failures_.end(); ++it) {
    if ((!it->method.empty() && it->method != request.method) ||
        request.path.find(it->path_substring) == std::string::npos) {
      continue;
    }
    Response response{it->status, StatusBody(it->status, it->message), ""};
    if (it->retry_after_seconds >= 0) {
      response.extra_headers = "Retry-After: " + std::to_string(it->retry_after_seconds) + "\r\n";
      response.body["details"] = {{"retryAfterSeconds", it->retry_after_seconds}};
    }
    if (it->remaining > 0 && --it->remaining == 0) failures_.erase(it);
    return response;
  }
  if (authorization != "Bearer " + token_) {
    return {401, StatusBody(401, "Unauthorized"), ""};
  }
  const auto parsed = ParsePath(request.path);
  if (!parsed)
    return {404, StatusBody(404, "the server could not find the requested resource"), ""};
  const auto& [info, ns, name] = *parsed;
  const Route route{info, ns, name};
  if (rbac_) {
    // SSA is authorized as patch, and also as create when it makes the object.
    std::vector<std::string> verbs;
    if (request.method == "GET") verbs = {"get"};
    if (request.method == "DELETE") verbs = {"delete"};
    if (request.method == "PATCH") {
      verbs = {"patch"};
      if (Find(route.key()) == nullptr) verbs.push_back("create");
    }
    for (const auto& verb : verbs) {
      if (!Allowed(*info, verb)) {
        const std::string group = Group(*info);
        rbac_denials_.push_back(verb + " " + QualifiedResource(*info) + " " + ns + "/" + name);
        return {403,
                StatusBody(403,
                           QualifiedResource(*info) + " \"" + name +
                               "\" is forbidden: User \"system:serviceaccount:provisioner:"
                               "provisioner\" cannot " +
                               verb + " resource \"" + info->plural + "\" in API group \"" + group +
                               "\"" + (ns.empty() ? "" : " in the namespace \"" + ns + "\""),
                           Details(*info, name)),
                ""};
      }
    }
  }
  if (request.method == "GET") return Get(route);
  if (request.method == "PATCH") return Apply(route, request);
  if (request.method == "DELETE") return Delete(route, request);
  return {405, StatusBody(405, "the server does not allow this method on the requested resource"),
          ""};
}

// ------------------------------------------------------------------------------------------------
// The API

KubeApiDouble::Stored* KubeApiDouble::Find(const Key& key) {
  const auto it = objects_.find(key);
  return it == objects_.end() ? nullptr : it->second.get();
}

void KubeApiDouble::Write(Stored& stored) {
  const Json before = stored.live;
  Json after = stored.Compose();
  if (!before.is_null() && SpecPart(before) != SpecPart(after)) {
    stored.server_metadata["generation"] = stored.server_metadata["generation"].get<int>() + 1;
  }
  stored.server_metadata["resourceVersion"] = std::to_string(next_resource_version_++);
  stored.live = stored.Compose();
  ++stored.writes;
}

void KubeApiDouble::FinalizeNamespaces() {
  if (finalization_held_) return;
  const auto now = Clock::now();
  for (auto it = finalize_at_.begin(); it != finalize_at_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    const std::string ns = it->first;
    std::erase_if(objects_, [&](const auto& entry) {
      const auto& [key, stored] = entry;
      return (stored->namespaced() && stored->ns() == ns) ||
             (std::string(stored->info->kind) == "Namespace" && stored->name() == ns);
    });
    it = finalize_at_.erase(it);
  }
}

KubeApiDouble::Response KubeApiDouble::Get(const Route& route) {
  if (const Stored* stored = Find(route.key())) return {200, stored->live, ""};
  return {404,
          StatusBody(404, QualifiedResource(*route.info) + " \"" + route.name + "\" not found",
                     Details(*route.info, route.name)),
          ""};
}

KubeApiDouble::Response KubeApiDouble::Apply(const Route& route, const Request& request) {
  const KindInfo& info = *route.info;
  if (MediaType(request.content_type) != "application/apply-patch+yaml") {
    // The real server also takes JSON, merge and strategic merge patches; the double does not,
    // and says so the way the server answers an unknown patch type.
    return {415,
            StatusBody(415,
                       "the body of the request was in an unknown format - accepted media "
                       "types include: application/apply-patch+yaml (the only patch type "
                       "this test double supports)"),
            ""};
  }
  const std::string manager = QueryParam(request.query, "fieldManager").value_or("");
  if (manager.empty()) {
    Json details = {{"group", "meta.k8s.io"},
                    {"kind", "PatchOptions"},
                    {"causes",
                     {{{"reason", "FieldValueRequired"},
                       {"message", "Required value: is required for apply patch"},
                       {"field", "fieldManager"}}}}};
    return {422,
            StatusBody(422,
                       "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: "
                       "is required for apply patch",
                       std::move(details)),
            ""};
  }
  const bool force = QueryParam(request.query, "force").value_or("") == "true";
  const Json body = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    return {400,
            StatusBody(400,
                       "error decoding YAML: the test double reads apply bodies as JSON "
                       "(which is YAML) and this is not a JSON object"),
            ""};
  }
  const Json metadata =
      body.contains("metadata") && body["metadata"].is_object() ? body["metadata"] : Json::object();
  const auto text = [](const Json& object, const char* key) {
    return object.contains(key) && object[key].is_string() ? object[key].get<std::string>() : "";
  };
  const auto bad_request = [](const std::string& message) {
    return Response{400, StatusBody(400, message), ""};
  };
  if (text(body, "apiVersion") != info.api_version) {
    return bad_request("the API version in the data (" + text(body, "apiVersion") +
                       ") does not match the expected API version (" + info.api_version + ")");
  }
  if (text(body, "kind") != info.kind) {
    return bad_request("the kind in the data (" + text(body, "kind") +
                       ") does not match the expected kind (" + info.kind + ")");
  }
  if (text(metadata, "name") != route.name) {
    return bad_request("the name of the object (" + text(metadata, "name") +
                       ") does not match the name on the URL (" + route.name + ")");
  }
  const std::string body_ns = text(metadata, "namespace");
  if (!body_ns.empty() && body_ns != route.ns) {
    return bad_request(
        "the namespace of the provided object does not match the namespace sent on the request");
  }
  if (const auto error = NameError(info, route.name)) {
    Json details = Details(info, route.name);
    details["kind"] = info.kind;
    details["causes"] = {{{"reason", "FieldValueInvalid"},
                          {"message", "Invalid value: \"" + route.name + "\": " + *error},
                          {"field", "metadata.name"}}};
    return {422,
            StatusBody(422,
                       std::string(info.kind) + " \"" + route.name +
                           "\" is invalid: metadata.name: Invalid value: \"" + route.name +
                           "\": " + *error,
                       std::move(details)),
            ""};
  }

  // What the manager owns: everything it sent but the status and the server's own metadata.
  Json config = WithoutNulls(body);
  config.erase("status");
  if (config.contains("metadata") && config["metadata"].is_object()) {
    for (const char* key : {"uid", "resourceVersion", "generation", "creationTimestamp",
                            "deletionTimestamp", "managedFields", "selfLink"}) {
      config["metadata"].erase(key);
    }
  }

  const Key key = route.key();
  Stored* stored = Find(key);
  if (stored == nullptr) return Create(route, key, std::move(config), manager);

  // A resourceVersion in the body is a precondition, as in every write.
  const std::string expected_version = text(metadata, "resourceVersion");
  if (!expected_version.empty() &&
      expected_version != stored->server_metadata["resourceVersion"].get<std::string>()) {
    return {409,
            StatusBody(409,
                       "Operation cannot be fulfilled on " + QualifiedResource(info) + " \"" +
                           route.name +
                           "\": the object has been modified; please apply your changes to the "
                           "latest version and try again",
                       Details(info, route.name)),
            ""};
  }

  auto mine = std::find_if(stored->applied.begin(), stored->applied.end(),
                           [&](const auto& entry) { return entry.first == manager; });
  if (mine != stored->applied.end() && mine->second == config) return {200, stored->live, ""};

  // Fields another manager set to something else: a conflict, or with force, taken over.
  const auto wanted = Leaves(config);
  std::vector<std::pair<std::string, FieldPath>> conflicts;
  for (const auto& [other, other_config] : stored->applied) {
    if (other == manager) continue;
    for (const auto& [path, value] : Leaves(other_config)) {
      const auto it = wanted.find(path);
      if (it != wanted.end() && it->second != value) conflicts.emplace_back(other, path);
    }
  }
  if (!conflicts.empty() && !force) {
    std::string message = "Apply failed with " + std::to_string(conflicts.size()) + " conflict" +
                          (conflicts.size() == 1 ? "" : "s") + ":";
    for (const auto& [other, path] : conflicts) {
      message += " conflict with \"" + other + "\": " + Dotted(path);
    }
    return {409, StatusBody(409, message, Details(info, route.name)), ""};
  }
  for (const auto& [other, path] : conflicts) {
    for (auto& [name, other_config] : stored->applied) {
      if (name == other) Erase(other_config, path);
    }
  }
  const auto previous = stored->applied;
  if (mine != stored->applied.end()) stored->applied.erase(mine);
  stored->applied.emplace_back(manager, config);
  if (auto invalid = ImmutableFieldChange(info, route.name, stored->live, stored->Compose())) {
    stored->applied = previous;
    return std::move(*invalid);
  }
  Write(*stored);
  RecordApplied(config);
  return {200, stored->live, ""};
}

// What the API server's update validation refuses on a live object (apps/v1 validation): a
// StatefulSet's spec may change only in replicas, ordinals, template, updateStrategy,
// persistentVolumeClaimRetentionPolicy and minReadySeconds; a Deployment's selector never.
std::optional<KubeApiDouble::Response> KubeApiDouble::ImmutableFieldChange(const KindInfo& info,
                                                                           const std::string& name,
                                                                           const Json& before,
                                                                           const Json& after) {
  const std::string kind = info.kind;
  const auto spec_field = [](const Json& object, const char* field) {
    return object.contains("spec") && object["spec"].contains(field) ? object["spec"][field]
                                                                     : Json();
  };
  std::optional<std::string> message;
  if (kind == "StatefulSet") {
    for (const char* field :
         {"volumeClaimTemplates", "serviceName", "selector", "podManagementPolicy"}) {
      if (spec_field(before, field) != spec_field(after, field)) {
        message = "StatefulSet.apps \"" + name +
                  "\" is invalid: spec: Forbidden: updates to statefulset spec for fields other "
                  "than 'replicas', 'ordinals', 'template', 'updateStrategy', "
                  "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
      }
    }
  } else if (kind == "Deployment" &&
             spec_field(before, "selector") != spec_field(after, "selector")) {
    message = "Deployment.apps \"" + name + "\" is invalid: spec.selector: Invalid value: " +
              spec_field(after, "selector").dump() + ": field is immutable";
  }
  if (!message) return std::nullopt;
  ++immutable_rejections_;
  Json details = Details(info, name);
  details["kind"] = info.kind;
  return Response{422, StatusBody(422, *message, std::move(details)), ""};
}

KubeApiDouble::Response KubeApiDouble::Create(const Route& route, const Key& key, Json config,
                                              const std::string& manager) {
  const KindInfo& info = *route.info;
  if (info.namespaced) {
    if (Find({"v1", "Namespace", "", route.ns}) == nullptr) {
      return {404,
              StatusBody(404, "namespaces \"" + route.ns + "\" not found",
                         {{"name", route.ns}, {"kind", "namespaces"}}),
              ""};
    }
    // Objects already in a terminating namespace may change; new ones may not appear.
    if (finalize_at_.count(route.ns) != 0) {
      return {403,
              StatusBody(403,
                         QualifiedResource(info) + " \"" + route.name +
                             "\" is forbidden: unable to create new content in namespace " +
                             route.ns + " because it is being terminated",
                         Details(info, route.name)),
              ""};
    }
  }
  auto stored = std::make_unique<Stored>();
  stored->key = key;
  stored->info = &info;
  stored->sequence = next_sequence_++;
  stored->server_metadata = {{"uid", NewUid()}, {"creationTimestamp", Now()}, {"generation", 1}};
  stored->applied.emplace_back(manager, std::move(config));
  if (std::string(info.kind) == "Namespace") stored->status = {{"phase", "Active"}};
  Stored& created = *stored;
  const Json applied = created.applied.back().second;
  objects_.emplace(key, std::move(stored));
  Write(created);
  RecordApplied(applied);
  return {201, created.live, ""};
}

KubeApiDouble::Response KubeApiDouble::Delete(const Route& route, const Request& request) {
  const KindInfo& info = *route.info;
  if (!request.body.empty()) {
    const Json options = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (!options.is_object()) {
      return {400, StatusBody(400, "the DeleteOptions in the body are not a JSON object"), ""};
    }
    const std::string policy = options.value("propagationPolicy", "Background");
    if (policy != "Background" && policy != "Foreground" && policy != "Orphan") {
      return {422,
              StatusBody(422,
                         "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: "
                         "Unsupported value: \"" +
                             policy + "\""),
              ""};
    }
  }
  Stored* stored = Find(route.key());
  if (stored == nullptr) return Get(route);  // the same 404
  if (std::string(info.kind) != "Namespace") {
    Json status = {{"kind", "Status"},
                   {"apiVersion", "v1"},
                   {"metadata", Json::object()},
                   {"status", "Success"},
                   {"details", Details(info, route.name)}};
    status["details"]["uid"] = stored->server_metadata["uid"];
    objects_.erase(route.key());
    return {200, status, ""};
  }
  if (finalize_at_.count(route.name) != 0) {
    return {409,
            StatusBody(409,
                       "Operation cannot be fulfilled on namespaces \"" + route.name +
                           "\": The system is ensuring all content is removed from this "
                           "namespace.  Upon completion, this namespace will automatically be "
                           "purged by the system.",
                       Details(info, route.name)),
            ""};
  }
  // The namespace controller empties it and then removes it; until then it is Terminating.
  stored->server_metadata["deletionTimestamp"] = Now();
  stored->status = {{"phase", "Terminating"}};
  Write(*stored);
  finalize_at_[route.name] = Clock::now() + finalization_delay_;
  return {200, stored->live, ""};
}

// ------------------------------------------------------------------------------------------------
// Test control

std::optional<Json> KubeApiDouble::Object(const std::string& api_version, const std::string& kind,
                                          const std::string& ns, const std::string& name) {
  std::lock_guard lock(mutex_);
  FinalizeNamespaces();
  if (const Stored* stored = Find(ControlKey(api_version, kind, ns, name))) return stored->live;
  return std::nullopt;
}

std::vector<Json> KubeApiDouble::ObjectsIn(const std::string& ns) {
  std::lock_guard lock(mutex_);
  FinalizeNamespaces();
  std::vector<const Stored*> found;
  for (const auto& [key, stored] : objects_) {
    if (stored->namespaced() && stored->ns() == ns) found.push_back(stored.get());
  }
  std::sort(found.begin(), found.end(),
            [](const Stored* a, const Stored* b) { return a->sequence < b->sequence; });
  std::vector<Json> out;
  for (const Stored* stored : found) out.push_back(stored->live);
  return out;
}

bool KubeApiDouble::NamespaceExists(const std::string& ns) {
  std::lock_guard lock(mutex_);
  FinalizeNamespaces();
  return Find({"v1", "Namespace", "", ns}) != nullptr;
}

std::vector<std::string> KubeApiDouble::Namespaces() {
  std::lock_guard lock(mutex_);
  FinalizeNamespaces();
  std::vector<const Stored*> found;
  for (const auto& [key, stored] : objects_) {
    if (std::string(stored->info->kind) == "Namespace") found.push_back(stored.get());
  }
  std::sort(found.begin(), found.end(),
            [](const Stored* a, const Stored* b) { return a->sequence < b->sequence; });
  std::vector<std::string> out;
  for (const Stored* stored : found) out.push_back(stored->name());
  return out;
}

void KubeApiDouble::MarkWorkloadsReady(const std::string& ns) { MarkReady(&ns); }

void KubeApiDouble::MarkAllWorkloadsReady() { MarkReady(nullptr); }

void KubeApiDouble::MarkReady(const std::string* ns) {
  std::lock_guard lock(mutex_);
  FinalizeNamespaces();
  for (auto& [key, stored] : objects_) {
    const std::string kind = stored->info->kind;
    if (!stored->namespaced() || (ns != nullptr && stored->ns() != *ns) ||
        (kind != "Deployment" && kind != "StatefulSet")) {
      continue;
    }
    const Json& live = stored->live;
    const Json replicas_field =
        live.contains("spec") ? live["spec"].value("replicas", Json(1)) : Json(1);
    const std::int64_t replicas =
        replicas_field.is_number_integer() ? replicas_field.get<std::int64_t>() : 1;
    const Json generation = stored->server_metadata["generation"];
    Json status = {{"observedGeneration", generation},
                   {"replicas", replicas},
                   {"readyReplicas", replicas},
                   {"availableReplicas", replicas},
                   {"updatedReplicas", replicas}};
    if (kind == "StatefulSet") {
      // A stand-in for the controller revision hash: it changes with every spec change.
      const std::string revision = stored->name() + "-" + generation.dump();
      status["currentReplicas"] = replicas;
      status["currentRevision"] = revision;
      status["updateRevision"] = revision;
    } else {
      status["conditions"] = {
          {{"type", "Available"}, {"status", "True"}, {"reason", "MinimumReplicasAvailable"}},
          {{"type", "Progressing"}, {"status", "True"}, {"reason", "NewReplicaSetAvailable"}}};
    }
    if (status != stored->status) {
      stored->status = std::move(status);
      Write(*stored);
    }
  }
}

bool KubeApiDouble::SetStatus(const std::string& api_version, const std::string& kind,
                              const std::string& ns, const std::string& name, const Json& status) {
  std::lock_guard lock(mutex_);
  FinalizeNamespaces();
  Stored* stored = Find(ControlKey(api_version, kind, ns, name));
  if (stored == nullptr) return false;
  if (stored->status != status) {
    stored->status = status;
    Write(*stored);
  }
  return true;
}

bool KubeApiDouble::RemoveObject(const std::string& api_version, const std::string& kind,
                                 const std::string& ns, const std::string& name) {
  const Key key = ControlKey(api_version, kind, ns, name);
  if (!KindByName(api_version, kind)->namespaced) {
    throw std::invalid_argument("KubeApiDouble::RemoveObject does not remove " + kind +
                                " objects: delete a namespace through the API");
  }
  std::lock_guard lock(mutex_);
  FinalizeNamespaces();
  return objects_.erase(key) != 0;
}

void KubeApiDouble::SetNamespaceFinalizationDelay(std::chrono::milliseconds delay) {
  std::lock_guard lock(mutex_);
  finalization_delay_ = delay;
}

void KubeApiDouble::InjectFailures(const std::string& method, const std::string& path_substring,
                                   int http_status, int count, const std::string& message,
                                   int retry_after_seconds) {
  if (count == 0) return;
  std::lock_guard lock(mutex_);
  failures_.push_back(
      Failure{method, path_substring, http_status, count, message, retry_after_seconds});
}

void KubeApiDouble::ClearFailures() {
  std::lock_guard lock(mutex_);
  failures_.clear();
}

void KubeApiDouble::SetResponseDelay(std::chrono::milliseconds delay) {
  SetResponseDelay(delay, delay);
}

void KubeApiDouble::SetResponseDelay(std::chrono::milliseconds min, std::chrono::milliseconds max) {
  std::lock_guard lock(mutex_);
  response_delay_ = min;
  response_delay_max_ = max;
}

std::vector<KubeApiDouble::Request> KubeApiDouble::Requests() {
  std::lock_guard lock(mutex_);
  return requests_;
}

bool KubeApiDouble::Allowed(const KindInfo& info, const std::string& verb) const {
  const std::string group = Group(info);
  return std::any_of(rbac_->begin(), rbac_->end(), [&](const RbacRule& rule) {
    return rule.groups.contains(group) && rule.resources.contains(info.plural) &&
           rule.verbs.contains(verb);
  });
}

void KubeApiDouble::EnforceRbac(const std::filesystem::path& manifest) {
  std::vector<RbacRule> rules;
  for (const YAML::Node& document : YAML::LoadAllFromFile(manifest.string())) {
    if (!document.IsMap() || document["kind"].as<std::string>("") != "ClusterRole") continue;
    for (const YAML::Node& rule : document["rules"]) {
      RbacRule parsed;
      for (const auto& group : rule["apiGroups"]) parsed.groups.insert(group.as<std::string>());
      for (const auto& resource : rule["resources"]) {
        parsed.resources.insert(resource.as<std::string>());
      }
      for (const auto& verb : rule["verbs"]) parsed.verbs.insert(verb.as<std::string>());
      rules.push_back(std::move(parsed));
    }
  }
  if (rules.empty()) {
    throw std::runtime_error("KubeApiDouble: no ClusterRole rules in " + manifest.string());
  }
  std::lock_guard lock(mutex_);
  rbac_ = std::move(rules);
}

std::vector<std::string> KubeApiDouble::RbacDenials() {
  std::lock_guard lock(mutex_);
  return rbac_denials_;
}

int KubeApiDouble::ImmutableFieldRejections() {
  std::lock_guard lock(mutex_);
  return immutable_rejections_;
}

void KubeApiDouble::RecordAppliedBodies(const std::filesystem::path& stream) {
  std::lock_guard lock(mutex_);
  applied_stream_ = stream;
  std::ofstream truncate(stream);
}

void KubeApiDouble::RecordApplied(const Json& body) {
  if (applied_stream_.empty()) return;
  // JSON is YAML: one document per accepted apply.
  std::ofstream out(applied_stream_, std::ios::app);
  out << "---\n" << body.dump() << "\n";
}

void KubeApiDouble::HoldNamespaceFinalization(bool held) {
  std::lock_guard lock(mutex_);
  finalization_held_ = held;
}

void KubeApiDouble::HoldRequests(const std::string& method, int pass) {
  std::lock_guard lock(mutex_);
  hold_ = Hold{method, pass};
}

void KubeApiDouble::ReleaseHeldRequests() {
  {
    std::lock_guard lock(mutex_);
    hold_.reset();
  }
  stopping_.notify_all();
}

int KubeApiDouble::HeldRequests() {
  std::lock_guard lock(mutex_);
  return held_;
}

int KubeApiDouble::CountRequests(const std::string& method, const std::string& path_substring) {
  std::lock_guard lock(mutex_);
  return static_cast<int>(std::count_if(requests_.begin(), requests_.end(), [&](const auto& r) {
    return (method.empty() || r.method == method) &&
           r.path.find(path_substring) != std::string::npos;
  }));
}

int KubeApiDouble::WriteCount(const std::string& api_version, const std::string& kind,
                              const std::string& ns, const std::string& name) {
  std::lock_guard lock(mutex_);
  FinalizeNamespaces();
  const Stored* stored = Find(ControlKey(api_version, kind, ns, name));
  return stored == nullptr ? 0 : stored->writes;
}

}  // namespace billing::testbed
