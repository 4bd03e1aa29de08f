// provisioner/kube: the HTTP client of the Kubernetes API (libcurl): requests, retries, errors.
#include "kube_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <mutex>
#include <random>
#include <string_view>
#include <thread>
#include <utility>

#include "billing/common/file.h"

namespace billing::provisioner {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Error bodies that are not a Status (a proxy's HTML page) are cut to this many characters.
constexpr std::size_t kMaxBodyInError = 300;

std::string Trim(std::string text) {
  const auto not_space = [](unsigned char c) { return std::isspace(c) == 0; };
  text.erase(text.begin(), std::find_if(text.begin(), text.end(), not_space));
  text.erase(std::find_if(text.rbegin(), text.rend(), not_space).base(), text.end());
  return text;
}

std::string Truncate(const std::string& text, std::size_t limit) {
  return text.size() <= limit ? text : text.substr(0, limit) + "...";
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

KubeApiError::KubeApiError(int status, std::string reason, std::string message,
                           const std::string& request)
    : std::runtime_error(
          (request.empty() ? "" : request + ": ") +
          (status == 0 ? std::string("transport error") : "HTTP " + std::to_string(status)) +
          (reason.empty() ? "" : " " + reason) + ": " + message),
      status_(status),
      reason_(std::move(reason)),
      api_message_(std::move(message)) {}

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
  std::optional<Clock::time_point> deadline;  // SetDeadline

  /// What is left until the deadline (the request timeout without one); throws once it passed.
  std::chrono::milliseconds Remaining(const Request& request) const;
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
    const auto wait = Backoff(attempt, answer.retry_after);
    // A retry that could only start after the deadline is not waited for.
    if (deadline && Clock::now() + wait >= *deadline) throw *failure;
    std::this_thread::sleep_for(wait);
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

std::chrono::milliseconds KubeClient::Impl::Remaining(const Request& request) const {
  if (!deadline) return retry.request_timeout;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
  if (left.count() <= 0) {
    throw KubeApiError(0, "", "the step's deadline passed before this request", request.Describe());
  }
  return std::min(left, retry.request_timeout);
}

Answer KubeClient::Impl::Exchange(const Request& request) {
  const auto timeout = Remaining(request);
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
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(
      handle, CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(
          std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(10)).count()));
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

void KubeClient::SetDeadline(std::optional<std::chrono::steady_clock::time_point> deadline) {
  impl_->deadline = deadline;
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
}  // namespace billing::provisioner
