// provisioner/kube: a Kubernetes API client over HTTP(S) (libcurl). Credentials come from a
// kubeconfig ($KUBECONFIG) or the in-cluster service account. Objects are applied with
// server-side apply (a field manager, force), read with GET, objects the chart no longer renders
// are deleted one by one, and a customer is torn down by deleting its namespace. 409, 429, 5xx and
// transport errors are retried with capped exponential backoff and jitter; 401/403/404/422 fail at
// once with the API's own message.
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

namespace billing::provisioner {

/// Where the API server is and how to prove who we are. Exactly what libcurl needs.
struct KubeCredentials {
  std::string server;  // "https://host:port" or "http://127.0.0.1:port" (tests); no trailing '/'
  std::string ca_pem;  // PEM of the CA that signs the server's certificate; empty: system CAs
  bool insecure_skip_tls_verify = false;
  std::string bearer_token;            // static token (kubeconfig `token`)
  std::string bearer_token_file;       // re-read before each request (projected tokens rotate)
  std::string client_certificate_pem;  // client certificate auth (kubeconfig client-certificate)
  std::string client_key_pem;
};

/// Parses a kubeconfig document: the current-context's cluster and user (server,
/// certificate-authority(-data), insecure-skip-tls-verify, token, tokenFile,
/// client-certificate(-data), client-key(-data)); relative file paths are relative to
/// `base_dir`. The error names the kubeconfig field at fault.
Result<KubeCredentials> ParseKubeconfig(const std::string& text, const std::string& base_dir);

/// $KUBECONFIG (its first path) if set, else the in-cluster service account
/// ($KUBERNETES_SERVICE_HOST, $KUBERNETES_SERVICE_PORT,
/// /var/run/secrets/kubernetes.io/serviceaccount token and ca.crt). `getenv` is injectable for
/// tests.
Result<KubeCredentials> LoadKubeCredentials(
    const std::function<const char*(const char*)>& getenv = ::getenv);
/// The same with the service-account directory injectable (tests); the default is
/// /var/run/secrets/kubernetes.io/serviceaccount.
Result<KubeCredentials> LoadKubeCredentials(const std::function<const char*(const char*)>& getenv,
                                            const std::filesystem::path& service_account_dir);

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

/// Resource path of a kind the provisioner handles ("/apis/apps/v1/namespaces/ns/deployments/x").
/// Throws std::invalid_argument for a kind it does not know.
std::string ResourcePath(const std::string& api_version, const std::string& kind,
                         const std::string& namespace_name, const std::string& name);

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

/// Whether a Deployment or StatefulSet, as the API returns it, has rolled out: its controller has
/// observed the current generation and the desired replicas are updated and ready/available
/// (kubectl rollout status' rules). Pure.
struct WorkloadReadiness {
  bool ready = false;
  bool failed = false;  // will not become ready without a change (ProgressDeadlineExceeded)
  std::int64_t desired_replicas = 0;
  std::int64_t ready_replicas = 0;
  std::string reason;  // why not ready, for the status message ("1 of 1 replicas not ready")
};
/// Throws std::invalid_argument for a kind that is neither a Deployment nor a StatefulSet.
WorkloadReadiness ReadinessOf(const nlohmann::json& workload);

}  // namespace billing::provisioner
