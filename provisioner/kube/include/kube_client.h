// kube: the Kubernetes API (kubeconfig, resource paths, the HTTP client over libcurl).
// May not depend on: libpq/libpqxx, CivetWeb, store, api, service (pure components and common
// only).
//
// Credentials come from a kubeconfig ($KUBECONFIG) or the in-cluster service account. Objects are
// applied with server-side apply (a field manager, force), read with GET, objects the chart no
// longer renders are deleted one by one, and a customer is torn down by deleting its namespace.
// 409, 429, 5xx and transport errors are retried with capped exponential backoff and jitter;
// 401/403/404/422 fail at once with the API's own message.
//
// Thread-safety: a KubeClient is used by one thread at a time (it owns a curl handle); make one
// per worker thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "billing/provisioner/result.h"
#include "kubeconfig.h"
#include "resource_path.h"

namespace billing::provisioner {

/// An API answer that is not success. `status` 0 is a transport failure (connection refused,
/// timeout). `message` is the Status object's message when the server sent one. `request`
/// ("PATCH /api/v1/...") only goes into what().
class KubeApiError : public std::runtime_error {
 public:
  KubeApiError(int status, std::string reason, std::string message,
               const std::string& request = "");
  int status() const { return status_; }
  const std::string& reason() const { return reason_; }  // Status.reason, e.g. "Conflict"
  const std::string& api_message() const { return api_message_; }
  bool retryable() const {
    return status_ == 0 || status_ == 409 || status_ == 429 || status_ >= 500;
  }

 private:
  int status_;
  std::string reason_;
  std::string api_message_;
};

struct KubeRetryPolicy {
  int max_attempts = 5;  // including the first
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::milliseconds request_timeout{30000};
};

class KubeClient {
 public:
  /// Observes every HTTP exchange (for the provisioner's metrics): method, HTTP status (0 on a
  /// transport failure) and seconds taken. Called on the client's thread.
  using Observer = std::function<void(const std::string& method, int status, double seconds)>;

  KubeClient(KubeCredentials credentials, std::string field_manager, KubeRetryPolicy retry = {},
             Observer observer = nullptr);
  ~KubeClient();
  KubeClient(const KubeClient&) = delete;
  KubeClient& operator=(const KubeClient&) = delete;

  /// Every request from now on ends by `deadline` (nullopt: none, only the per-request
  /// timeout): its timeout is cut to what is left, a retry that would start after it is not
  /// waited for, and once it has passed a request fails at once without being sent
  /// (KubeApiError, status 0). A reconcile step sets one so that a Kubernetes API that stops
  /// answering holds a worker for a bounded time, whatever the retries.
  void SetDeadline(std::optional<std::chrono::steady_clock::time_point> deadline);

  /// Server-side apply: PATCH {path}?fieldManager=...&force=true with
  /// Content-Type application/apply-patch+yaml (the body is the object as JSON, which is YAML).
  /// Returns the object as stored. Throws KubeApiError after the retries are spent.
  nlohmann::json Apply(const nlohmann::json& object);

  /// The object, or nullopt on 404. Throws KubeApiError otherwise.
  std::optional<nlohmann::json> Get(const std::string& api_version, const std::string& kind,
                                    const std::string& namespace_name, const std::string& name);

  /// DELETE one namespaced object (propagationPolicy Background: its dependents, such as a
  /// Deployment's ReplicaSets, are collected afterwards). True if it existed, false on 404 (already
  /// gone: fine). Retried like every call. A Namespace is refused with std::invalid_argument: that
  /// is DeleteNamespace, whose 409 means something else.
  bool Delete(const std::string& api_version, const std::string& kind,
              const std::string& namespace_name, const std::string& name);

  /// DELETE the namespace (propagationPolicy Background). True if it existed, false on 404.
  /// A namespace already being deleted answers 409 Conflict ("The system is ensuring all content
  /// is removed"): that is true too, confirmed by a GET, and never retried.
  bool DeleteNamespace(const std::string& name);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace billing::provisioner
