#include "kube_client.h"

#include <curl/curl.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <string_view>
#include <thread>
#include <utility>

#include "billing/common/base64.h"
#include "billing/common/file.h"

namespace billing::provisioner {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
// Error bodies that are not a Status (a proxy's HTML page) are cut to this many characters.
constexpr std::size_t kMaxBodyInError = 300;

// ----------------------------------------------------------------------------------------------
// Kinds and paths

struct KindInfo {
  std::string_view api_version;
  std::string_view kind;
  std::string_view plural;
  bool namespaced;
};

// Every kind the renderer produces, and nothing else: the provisioner's RBAC grants exactly these.
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

const KindInfo& FindKind(const std::string& api_version, const std::string& kind) {
  for (const auto& info : kKinds) {
    if (info.api_version == api_version && info.kind == kind) return info;
  }
  throw std::invalid_argument("unknown kind " + api_version + "/" + kind +
                              " (the Kubernetes client knows only the kinds the renderer makes)");
}

// Names go into the URL unescaped, so anything that could change the path is refused here. The
// API server's own naming rules (lower case, length) are left to it: its 422 says it better.
void CheckPathSegment(const std::string& what, const std::string& value) {
  const bool safe = std::all_of(value.begin(), value.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_';
  });
  if (value.empty() || value == "." || value == ".." || !safe) {
    throw std::invalid_argument(what + " \"" + value + "\" cannot be part of an API path");
  }
}

// ----------------------------------------------------------------------------------------------
// Small helpers

// Thrown while reading a kubeconfig; turned into Result's Error at the public boundary.
struct FieldError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string Trim(std::string text) {
  const auto not_space = [](unsigned char c) { return std::isspace(c) == 0; };
  text.erase(text.begin(), std::find_if(text.begin(), text.end(), not_space));
  text.erase(std::find_if(text.rbegin(), text.rend(), not_space).base(), text.end());
  return text;
}

std::string Truncate(const std::string& text, std::size_t limit) {
  return text.size() <= limit ? text : text.substr(0, limit) + "...";
}

bool LooksLikePem(const std::string& text) { return text.find("-----BEGIN ") != std::string::npos; }

// ----------------------------------------------------------------------------------------------
// kubeconfig

// A kubeconfig string field; empty if absent. `where` is the path of `parent` for messages.
std::string OptionalString(const YAML::Node& parent, const std::string& key,
                           const std::string& where) {
  const YAML::Node node = parent[key];
  if (!node.IsDefined() || node.IsNull()) return std::string();
  if (!node.IsScalar()) throw FieldError(where + "." + key + ": must be a string");
  return node.as<std::string>();
}

std::string RequiredString(const YAML::Node& parent, const std::string& key,
                           const std::string& where) {
  std::string value = OptionalString(parent, key, where);
  if (value.empty()) throw FieldError(where + "." + key + ": missing");
  return value;
}

// The inner map (`cluster`, `context` or `user`) of the entry named `name` in the list `list`.
YAML::Node FindNamed(const YAML::Node& root, const std::string& list, const std::string& inner,
                     const std::string& name, const std::string& referrer) {
  // yaml-cpp: only IsDefined() may be asked of a missing key's node; anything else throws.
  const YAML::Node entries = root[list];
  const bool present = entries.IsDefined() && !entries.IsNull();
  if (present && !entries.IsSequence()) throw FieldError(list + ": must be a list");
  if (present) {
    for (const auto& entry : entries) {
      if (!entry.IsMap() || OptionalString(entry, "name", list + "[]") != name) continue;
      const YAML::Node node = entry[inner];
      if (!node.IsMap()) throw FieldError(list + "[" + name + "]." + inner + ": missing");
      return node;
    }
  }
  throw FieldError(list + ": no entry named \"" + name + "\" (named by " + referrer + ")");
}

std::filesystem::path Resolve(const std::string& path, const std::string& base_dir) {
  const std::filesystem::path p(path);
  return p.is_relative() && !base_dir.empty() ? std::filesystem::path(base_dir) / p : p;
}

// A PEM from `<key>-data` (base64, preferred as kubectl does) or the file `<key>`; empty if
// neither is set.
std::string PemField(const YAML::Node& parent, const std::string& key, const std::string& where,
                     const std::string& base_dir) {
  const std::string data = OptionalString(parent, key + "-data", where);
  if (!data.empty()) {
    auto decoded = common::Base64Decode(data);
    if (!decoded) throw FieldError(where + "." + key + "-data: not valid base64");
    if (!LooksLikePem(*decoded)) throw FieldError(where + "." + key + "-data: not a PEM document");
    return *decoded;
  }
  const std::string file = OptionalString(parent, key, where);
  if (file.empty()) return std::string();
  const auto path = Resolve(file, base_dir);
  auto text = common::ReadTextFile(path);
  if (!text) throw FieldError(where + "." + key + ": cannot read " + path.string());
  if (!LooksLikePem(*text))
    throw FieldError(where + "." + key + ": " + path.string() + " is not PEM");
  return *text;
}

void ParseCluster(const YAML::Node& cluster, const std::string& where, const std::string& base_dir,
                  KubeCredentials& out) {
  std::string server = RequiredString(cluster, "server", where);
  if (server.rfind("https://", 0) != 0 && server.rfind("http://", 0) != 0) {
    throw FieldError(where + ".server: \"" + server + "\" is not an http(s) URL");
  }
  while (!server.empty() && server.back() == '/') server.pop_back();
  out.server = server;
  out.ca_pem = PemField(cluster, "certificate-authority", where, base_dir);
  const YAML::Node insecure = cluster["insecure-skip-tls-verify"];
  if (insecure.IsDefined() && !insecure.IsNull()) {
    try {
      out.insecure_skip_tls_verify = insecure.as<bool>();
    } catch (const YAML::Exception&) {
      throw FieldError(where + ".insecure-skip-tls-verify: must be true or false");
    }
  }
  // kubectl refuses the combination too: a CA that is then not checked is a configuration error.
  if (out.insecure_skip_tls_verify && !out.ca_pem.empty()) {
    throw FieldError(where +
                     ".insecure-skip-tls-verify: cannot be true together with a "
                     "certificate-authority");
  }
}

void ParseUser(const YAML::Node& user, const std::string& where, const std::string& base_dir,
               KubeCredentials& out) {
  for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
    if (user[unsupported].IsDefined()) {
      throw FieldError(where + "." + unsupported +
                       ": not supported; use token, tokenFile or client-certificate/client-key");
    }
  }
  out.bearer_token = OptionalString(user, "token", where);
  const std::string token_file = OptionalString(user, "tokenFile", where);
  if (!token_file.empty()) {
    const auto path = Resolve(token_file, base_dir);
    if (!common::ReadTextFile(path))
      throw FieldError(where + ".tokenFile: cannot read " + path.string());
    out.bearer_token_file = path.string();
  }
  out.client_certificate_pem = PemField(user, "client-certificate", where, base_dir);
  out.client_key_pem = PemField(user, "client-key", where, base_dir);
  if (out.client_certificate_pem.empty() != out.client_key_pem.empty()) {
    const char* missing = out.client_key_pem.empty() ? "client-key" : "client-certificate";
    throw FieldError(where + "." + missing + ": missing (a client certificate needs both)");
  }
}

KubeCredentials ParseKubeconfigRoot(const YAML::Node& root, const std::string& base_dir) {
  const std::string current = OptionalString(root, "current-context", "kubeconfig");
  if (current.empty()) throw FieldError("current-context: not set");
  const YAML::Node context = FindNamed(root, "contexts", "context", current, "current-context");
  const std::string context_where = "contexts[" + current + "].context";
  const std::string cluster_name = RequiredString(context, "cluster", context_where);
  KubeCredentials credentials;
  ParseCluster(FindNamed(root, "clusters", "cluster", cluster_name, context_where + ".cluster"),
               "clusters[" + cluster_name + "].cluster", base_dir, credentials);
  // A context without a user is anonymous access: legal, if rarely useful.
  const std::string user_name = OptionalString(context, "user", context_where);
  if (!user_name.empty()) {
    ParseUser(FindNamed(root, "users", "user", user_name, context_where + ".user"),
              "users[" + user_name + "].user", base_dir, credentials);
  }
  return credentials;
}

// ----------------------------------------------------------------------------------------------
// HTTP

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct CurlListDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct CurlStringDeleter {
  void operator()(char* text) const { curl_free(text); }
};

std::size_t AppendBody(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

struct Request {
  std::string method;
  std::string path;  // with the query
  std::string content_type;
  std::string body;
  std::string Describe() const { return method + " " + path; }
};

struct Answer {
  long status = 0;
  std::string body;
  std::optional<std::chrono::seconds> retry_after;
};

bool Success(long status) { return status >= 200 && status < 300; }

KubeApiError ErrorFrom(const Answer& answer, const Request& request) {
  const int status = static_cast<int>(answer.status);
  const Json body = Json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.value("kind", "") == "Status") {
    const auto text = [&](const char* key) {
      return body.contains(key) && body[key].is_string() ? body[key].get<std::string>() : "";
    };
    return KubeApiError(status, text("reason"), text("message"), request.Describe());
  }
  std::string message = Trim(Truncate(answer.body, kMaxBodyInError));
  if (message.empty()) message = "HTTP " + std::to_string(status) + " with an empty body";
  return KubeApiError(status, "", message, request.Describe());
}

Json ParseObject(const Answer& answer, const Request& request) {
  Json body = Json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    throw KubeApiError(static_cast<int>(answer.status), "",
                       "the answer is not a JSON object: " + Truncate(answer.body, kMaxBodyInError),
                       request.Describe());
  }
  return body;
}

// Retry-After in seconds (Kubernetes never sends the HTTP-date form).
std::optional<std::chrono::seconds> RetryAfter(CURL* curl) {
  curl_header* header = nullptr;
  if (curl_easy_header(curl, "Retry-After", 0, CURLH_HEADER, -1, &header) != CURLHE_OK) {
    return std::nullopt;
  }
  const std::string value = Trim(header->value);
  long long seconds = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (error != std::errc() || end != value.data() + value.size() || seconds < 0) {
    return std::nullopt;
  }
  return std::chrono::seconds(seconds);
}

void SetBlob(CURL* curl, CURLoption option, const std::string& pem) {
  curl_blob blob{};
  blob.data = const_cast<char*>(pem.data());  // CURL_BLOB_COPY: curl copies, never writes
  blob.len = pem.size();
  blob.flags = CURL_BLOB_COPY;
  curl_easy_setopt(curl, option, &blob);
}

}  // namespace

// ----------------------------------------------------------------------------------------------
// Public functions

Result<KubeCredentials> ParseKubeconfig(const std::string& text, const std::string& base_dir) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return Error{"kubeconfig: not a YAML mapping"};
    return ParseKubeconfigRoot(root, base_dir);
  } catch (const FieldError& e) {
    return Error{std::string("kubeconfig: ") + e.what()};
  } catch (const YAML::Exception& e) {
    return Error{std::string("kubeconfig: not valid YAML: ") + e.what()};
  }
}

Result<KubeCredentials> LoadKubeCredentials(const std::function<const char*(const char*)>& getenv) {
  return LoadKubeCredentials(getenv, kServiceAccountDir);
}

Result<KubeCredentials> LoadKubeCredentials(const std::function<const char*(const char*)>& getenv,
                                            const std::filesystem::path& service_account_dir) {
  const auto env = [&](const char* name) {
    const char* value = getenv(name);
    return value == nullptr ? std::string() : std::string(value);
  };
  const std::string kubeconfig = env("KUBECONFIG");
  if (!kubeconfig.empty()) {
    // KUBECONFIG is a list like PATH; kubectl merges them, we take the first one.
    std::string first;
    std::istringstream paths(kubeconfig);
    while (first.empty() && std::getline(paths, first, ':')) {
    }
    const auto text = common::ReadTextFile(first);
    if (!text) return Error{"KUBECONFIG: cannot read " + first};
    auto parsed = ParseKubeconfig(*text, std::filesystem::path(first).parent_path().string());
    if (!parsed.ok()) return Error{first + ": " + parsed.error()};
    return parsed;
  }
  const std::string host = env("KUBERNETES_SERVICE_HOST");
  const std::string port = env("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty()) {
    return Error{
        "no Kubernetes credentials: KUBECONFIG is not set and KUBERNETES_SERVICE_HOST/"
        "KUBERNETES_SERVICE_PORT are not set either (not running in a cluster?)"};
  }
  KubeCredentials credentials;
  const bool ipv6 = host.find(':') != std::string::npos;
  credentials.server = "https://" + (ipv6 ? "[" + host + "]" : host) + ":" + port;
  const auto token = service_account_dir / "token";
  if (!common::ReadTextFile(token))
    return Error{"in-cluster service account: cannot read " + token.string()};
  credentials.bearer_token_file = token.string();
  const auto ca = service_account_dir / "ca.crt";
  auto ca_pem = common::ReadTextFile(ca);
  if (!ca_pem || !LooksLikePem(*ca_pem)) {
    return Error{"in-cluster service account: cannot read a PEM CA from " + ca.string()};
  }
  credentials.ca_pem = std::move(*ca_pem);
  return credentials;
}

KubeApiError::KubeApiError(int status, std::string reason, std::string message,
                           const std::string& request)
    : std::runtime_error(
          (request.empty() ? "" : request + ": ") +
          (status == 0 ? std::string("transport error") : "HTTP " + std::to_string(status)) +
          (reason.empty() ? "" : " " + reason) + ": " + message),
      status_(status),
      reason_(std::move(reason)),
      api_message_(std::move(message)) {}

std::string ResourcePath(const std::string& api_version, const std::string& kind,
                         const std::string& namespace_name, const std::string& name) {
  const KindInfo& info = FindKind(api_version, kind);
  CheckPathSegment(kind + " name", name);
  // The core group lives under /api, every named group under /apis.
  std::string path =
      (api_version.find('/') == std::string::npos ? "/api/" : "/apis/") + api_version;
  if (info.namespaced) {
    CheckPathSegment(kind + " namespace", namespace_name);
    path += "/namespaces/" + namespace_name;
  } else if (!namespace_name.empty()) {
    throw std::invalid_argument(kind + " is cluster-scoped but namespace \"" + namespace_name +
                                "\" was given");
  }
  return path + "/" + std::string(info.plural) + "/" + name;
}

// ----------------------------------------------------------------------------------------------
// KubeClient

struct KubeClient::Impl {
  KubeCredentials credentials;
  std::string field_manager;
  KubeRetryPolicy retry;
  Observer observer;
  std::unique_ptr<CURL, CurlDeleter> curl;
  // Options of the handle point at these until the next request resets it, so they live here.
  std::unique_ptr<curl_slist, CurlListDeleter> headers;
  std::array<char, CURL_ERROR_SIZE> error_text{};
  std::mt19937_64 random{std::random_device{}()};

  Answer Send(const Request& request, std::initializer_list<long> accepted);
  Answer Exchange(const Request& request);
  std::string BearerToken(const Request& request) const;
  void ConfigureTls() const;
  std::chrono::milliseconds Backoff(int failures, std::optional<std::chrono::seconds> retry_after);
  std::string Escape(const std::string& text) const;
};

// One attempt after another until success, an answer the caller accepts, an error that retrying
// cannot fix, or the attempts are spent.
Answer KubeClient::Impl::Send(const Request& request, std::initializer_list<long> accepted) {
  for (int attempt = 1;; ++attempt) {
    std::optional<KubeApiError> failure;
    Answer answer;
    try {
      answer = Exchange(request);
    } catch (const KubeApiError& transport) {
      failure = transport;
    }
    if (!failure) {
      const bool ok = Success(answer.status) ||
                      std::find(accepted.begin(), accepted.end(), answer.status) != accepted.end();
      if (ok) return answer;
      failure = ErrorFrom(answer, request);
    }
    if (!failure->retryable() || attempt >= retry.max_attempts) throw *failure;
    std::this_thread::sleep_for(Backoff(attempt, answer.retry_after));
  }
}

std::chrono::milliseconds KubeClient::Impl::Backoff(
    int failures, std::optional<std::chrono::seconds> retry_after) {
  auto base = std::max(retry.initial_backoff, std::chrono::milliseconds(1));
  for (int i = 1; i < failures && base < retry.max_backoff; ++i) base *= 2;
  base = std::min(base, retry.max_backoff);
  // "Equal jitter": at least half the delay, so retries back off, plus a random half, so the
  // workers that failed together do not come back together.
  std::uniform_int_distribution<std::int64_t> jitter(0, base.count() / 2);
  std::chrono::milliseconds wait(base.count() - base.count() / 2 + jitter(random));
  // The server's own Retry-After (429 under API Priority and Fairness) knows better, but a
  // worker must not stall past the cap on its word alone.
  if (retry_after) wait = std::max<std::chrono::milliseconds>(wait, *retry_after);
  return std::min(wait, retry.max_backoff);
}

std::string KubeClient::Impl::BearerToken(const Request& request) const {
  if (credentials.bearer_token_file.empty()) return credentials.bearer_token;
  // Projected service-account tokens rotate: read the file for every request. A missing file
  // counts as a transport failure, retried, since the kubelet swaps it atomically.
  auto token = common::ReadTextFile(credentials.bearer_token_file);
  if (!token) {
    throw KubeApiError(0, "", "cannot read token file " + credentials.bearer_token_file,
                       request.Describe());
  }
  return Trim(*token);
}

void KubeClient::Impl::ConfigureTls() const {
  CURL* handle = curl.get();
  if (!credentials.ca_pem.empty()) SetBlob(handle, CURLOPT_CAINFO_BLOB, credentials.ca_pem);
  if (credentials.insecure_skip_tls_verify) {
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!credentials.client_certificate_pem.empty()) {
    SetBlob(handle, CURLOPT_SSLCERT_BLOB, credentials.client_certificate_pem);
    curl_easy_setopt(handle, CURLOPT_SSLCERTTYPE, "PEM");
    SetBlob(handle, CURLOPT_SSLKEY_BLOB, credentials.client_key_pem);
    curl_easy_setopt(handle, CURLOPT_SSLKEYTYPE, "PEM");
  }
}

Answer KubeClient::Impl::Exchange(const Request& request) {
  CURL* handle = curl.get();
  // Reset clears the previous request's options but keeps the connection cache: one TLS
  // handshake serves many requests.
  curl_easy_reset(handle);
  const std::string url = credentials.server + request.path;
  Answer answer;
  error_text.fill('\0');
  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(retry.request_timeout.count()));
  curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<std::chrono::milliseconds>(retry.request_timeout,
                                                                         std::chrono::seconds(10))
                                         .count()));
  curl_easy_setopt(handle, CURLOPT_USERAGENT, "billing-provisioner");
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_text.data());
  ConfigureTls();

  headers.reset();
  const auto add_header = [&](const std::string& line) {
    curl_slist* list = curl_slist_append(headers.get(), line.c_str());
    if (list == nullptr) throw std::bad_alloc();
    (void)headers.release();  // `list` is the same list, grown (or a new one if it was empty)
    headers.reset(list);
  };
  add_header("Accept: application/json");
  // No "Expect: 100-continue" round trip before large bodies.
  add_header("Expect:");
  const std::string token = BearerToken(request);
  if (!token.empty()) add_header("Authorization: Bearer " + token);
  if (!request.content_type.empty()) add_header("Content-Type: " + request.content_type);
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.get());

  if (request.method == "GET") {
    curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (!request.body.empty()) {
      curl_easy_setopt(handle, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    }
  }

  const auto start = Clock::now();
  const CURLcode rc = curl_easy_perform(handle);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (rc == CURLE_OK) curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &answer.status);
  if (observer) observer(request.method, static_cast<int>(answer.status), seconds);
  if (rc != CURLE_OK) {
    const std::string detail = error_text[0] != '\0' ? error_text.data() : curl_easy_strerror(rc);
    throw KubeApiError(0, "", "cannot reach " + credentials.server + ": " + detail,
                       request.Describe());
  }
  answer.retry_after = RetryAfter(handle);
  return answer;
}

std::string KubeClient::Impl::Escape(const std::string& text) const {
  std::unique_ptr<char, CurlStringDeleter> escaped(
      curl_easy_escape(curl.get(), text.c_str(), static_cast<int>(text.size())));
  if (!escaped) throw std::bad_alloc();
  return escaped.get();
}

KubeClient::KubeClient(KubeCredentials credentials, std::string field_manager,
                       KubeRetryPolicy retry, Observer observer)
    : impl_(std::make_unique<Impl>()) {
  if (credentials.server.empty()) throw std::invalid_argument("KubeClient: no API server");
  if (field_manager.empty()) throw std::invalid_argument("KubeClient: no field manager");
  if (retry.max_attempts < 1) throw std::invalid_argument("KubeClient: max_attempts must be >= 1");
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  impl_->credentials = std::move(credentials);
  impl_->field_manager = std::move(field_manager);
  impl_->retry = retry;
  impl_->observer = std::move(observer);
  impl_->curl.reset(curl_easy_init());
  if (!impl_->curl) throw std::runtime_error("KubeClient: libcurl could not start");
}

KubeClient::~KubeClient() = default;

Json KubeClient::Apply(const Json& object) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) {
    throw std::invalid_argument("Apply: not a Kubernetes object");
  }
  const auto& metadata = object["metadata"];
  const Request request{"PATCH",
                        ResourcePath(object.value("apiVersion", ""), object.value("kind", ""),
                                     metadata.value("namespace", ""), metadata.value("name", "")) +
                            "?fieldManager=" + impl_->Escape(impl_->field_manager) + "&force=true",
                        // JSON is YAML, so the object goes as it is.
                        "application/apply-patch+yaml", object.dump()};
  return ParseObject(impl_->Send(request, {}), request);
}

std::optional<Json> KubeClient::Get(const std::string& api_version, const std::string& kind,
                                    const std::string& namespace_name, const std::string& name) {
  const Request request{"GET", ResourcePath(api_version, kind, namespace_name, name), "", ""};
  const Answer answer = impl_->Send(request, {404});
  if (answer.status == 404) return std::nullopt;
  return ParseObject(answer, request);
}

namespace {

std::string BackgroundDeleteOptions() {
  return Json{{"apiVersion", "v1"}, {"kind", "DeleteOptions"}, {"propagationPolicy", "Background"}}
      .dump();
}

}  // namespace

bool KubeClient::Delete(const std::string& api_version, const std::string& kind,
                        const std::string& namespace_name, const std::string& name) {
  if (api_version == "v1" && kind == "Namespace") {
    throw std::invalid_argument("Delete: a Namespace is deleted with DeleteNamespace");
  }
  const Request request{"DELETE", ResourcePath(api_version, kind, namespace_name, name),
                        "application/json", BackgroundDeleteOptions()};
  return impl_->Send(request, {404}).status != 404;
}

bool KubeClient::DeleteNamespace(const std::string& name) {
  const Request request{"DELETE", ResourcePath("v1", "Namespace", "", name), "application/json",
                        BackgroundDeleteOptions()};
  const Answer answer = impl_->Send(request, {404, 409});
  if (answer.status == 404) return false;
  if (answer.status == 409) {
    // A namespace already terminating answers 409 to a second DELETE. Anything else that
    // conflicts (it should not happen without preconditions) is reported, not guessed at.
    const auto live = Get("v1", "Namespace", "", name);
    if (live && !live->contains("/metadata/deletionTimestamp"_json_pointer)) {
      throw ErrorFrom(answer, request);
    }
  }
  return true;
}

// ----------------------------------------------------------------------------------------------
// Readiness

namespace {

std::int64_t IntAt(const Json& object, const Json::json_pointer& pointer, std::int64_t fallback) {
  if (!object.contains(pointer)) return fallback;
  const Json& value = object.at(pointer);
  return value.is_number_integer() ? value.get<std::int64_t>() : fallback;
}

std::string StringAt(const Json& object, const Json::json_pointer& pointer) {
  if (!object.contains(pointer)) return std::string();
  const Json& value = object.at(pointer);
  return value.is_string() ? value.get<std::string>() : std::string();
}

WorkloadReadiness NotReady(WorkloadReadiness readiness, std::string reason) {
  readiness.ready = false;
  readiness.reason = std::move(reason);
  return readiness;
}

bool ProgressDeadlineExceeded(const Json& workload) {
  const Json::json_pointer pointer("/status/conditions");
  if (!workload.contains(pointer) || !workload.at(pointer).is_array()) return false;
  for (const auto& condition : workload.at(pointer)) {
    if (condition.is_object() && condition.value("type", "") == "Progressing" &&
        condition.value("reason", "") == "ProgressDeadlineExceeded") {
      return true;
    }
  }
  return false;
}

// kubectl's DeploymentStatusViewer.
WorkloadReadiness DeploymentReadiness(const Json& d, WorkloadReadiness r) {
  const std::int64_t desired = r.desired_replicas;
  const std::int64_t updated = IntAt(d, "/status/updatedReplicas"_json_pointer, 0);
  const std::int64_t total = IntAt(d, "/status/replicas"_json_pointer, 0);
  const std::int64_t available = IntAt(d, "/status/availableReplicas"_json_pointer, 0);
  if (ProgressDeadlineExceeded(d)) {
    r.failed = true;
    return NotReady(r, "deployment exceeded its progress deadline");
  }
  if (updated < desired) {
    return NotReady(
        r, std::to_string(updated) + " of " + std::to_string(desired) + " replicas updated");
  }
  if (total > updated) {
    return NotReady(r, std::to_string(total - updated) + " old replicas pending termination");
  }
  if (available < updated || available < desired) {
    return NotReady(r, std::to_string(desired - std::min(available, desired)) + " of " +
                           std::to_string(desired) + " replicas not available");
  }
  r.ready = true;
  return r;
}

// kubectl's StatefulSetStatusViewer (RollingUpdate, with partitions).
WorkloadReadiness StatefulSetReadiness(const Json& s, WorkloadReadiness r) {
  const std::int64_t desired = r.desired_replicas;
  const std::int64_t updated = IntAt(s, "/status/updatedReplicas"_json_pointer, 0);
  const std::int64_t total = IntAt(s, "/status/replicas"_json_pointer, 0);
  if (r.ready_replicas < desired) {
    return NotReady(r, std::to_string(desired - r.ready_replicas) + " of " +
                           std::to_string(desired) + " replicas not ready");
  }
  if (total > desired) {
    return NotReady(r, std::to_string(total - desired) + " replicas pending termination");
  }
  const std::int64_t partition =
      IntAt(s, "/spec/updateStrategy/rollingUpdate/partition"_json_pointer, 0);
  if (partition > 0) {
    // A partitioned rollout is complete when the pods at or above the partition are updated;
    // the revisions differ by design.
    if (updated < desired - partition) {
      return NotReady(r, std::to_string(updated) + " of " + std::to_string(desired - partition) +
                             " partitioned replicas updated");
    }
    r.ready = true;
    return r;
  }
  if (updated < desired) {
    return NotReady(
        r, std::to_string(updated) + " of " + std::to_string(desired) + " replicas updated");
  }
  const std::string current = StringAt(s, "/status/currentRevision"_json_pointer);
  const std::string update = StringAt(s, "/status/updateRevision"_json_pointer);
  if (!current.empty() && !update.empty() && current != update) {
    return NotReady(r, "rolling update to revision " + update + " in progress");
  }
  r.ready = true;
  return r;
}

}  // namespace

WorkloadReadiness ReadinessOf(const Json& workload) {
  const std::string kind = workload.is_object() ? workload.value("kind", "") : "";
  if (kind != "Deployment" && kind != "StatefulSet") {
    throw std::invalid_argument("ReadinessOf: not a Deployment or StatefulSet: \"" + kind + "\"");
  }
  WorkloadReadiness r;
  r.desired_replicas = IntAt(workload, "/spec/replicas"_json_pointer, 1);
  r.ready_replicas = IntAt(workload, "/status/readyReplicas"_json_pointer, 0);
  if (workload.contains("/metadata/deletionTimestamp"_json_pointer)) {
    return NotReady(r, "being deleted");
  }
  const std::int64_t generation = IntAt(workload, "/metadata/generation"_json_pointer, 0);
  const std::int64_t observed = IntAt(workload, "/status/observedGeneration"_json_pointer, 0);
  // Until the controller has seen the current spec, the rest of the status describes an older one.
  if (observed == 0 || observed < generation) {
    return NotReady(
        r, "waiting for the controller to observe generation " + std::to_string(generation));
  }
  return kind == "Deployment" ? DeploymentReadiness(workload, r)
                              : StatefulSetReadiness(workload, r);
}

}  // namespace billing::provisioner
