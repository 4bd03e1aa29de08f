// KubeApiDouble: a test double of kube-apiserver, not a Kubernetes implementation.
//
// A loopback HTTP server (CivetWeb on 127.0.0.1, a free port) that answers the requests the
// provisioner's Kubernetes client makes, following the documented API semantics closely enough
// for it, and nothing more:
//  - bearer-token authentication (401 otherwise);
//  - server-side apply (PATCH, Content-Type application/apply-patch+yaml, a JSON body, the
//    fieldManager query parameter, force): creates an object, or merges it with what other field
//    managers applied. Each manager's applied configuration is kept; the live object is the
//    server's metadata, the managers' configurations merged (maps recursively, lists as a whole,
//    the last changed manager on top) and the status. A field set by another manager to a
//    different value is a 409 conflict unless force=true, which takes it over. An apply equal to
//    the manager's previous one changes nothing (resourceVersion and generation stay);
//    metadata.generation grows only when something outside metadata and status changes. As in
//    kube-apiserver, an apply without fieldManager is 422 Invalid (PatchOptions validation), a
//    body that does not match the URL 400, a create in a missing namespace 404 and in a
//    terminating one 403;
//  - GET of one object; DELETE of an object; DELETE of a namespace marks it Terminating and,
//    after a configurable finalization delay (or when the test releases it), removes it with
//    everything in it;
//  - every error as a Kubernetes Status object with the API's reason and code.
// Not modelled: lists, watches, other patch types, dry run, admission, defaulting, validation
// beyond names, managedFields, resource versions as preconditions other than in an apply body.
//
// The kinds it serves are the provisioner's: Namespace, ResourceQuota, Secret, ConfigMap,
// Service, ServiceAccount, NetworkPolicy, Ingress, StatefulSet, Deployment, ServiceMonitor.
//
// Test-control methods name objects as the API does (apiVersion, kind, namespace, name; the
// namespace empty for a Namespace) and throw std::invalid_argument for a kind the double does not
// serve: that is a mistake in the test, not an absent object.
//
// Thread-safety: every method may be called from any thread while requests are served; state is
// behind one mutex, which is never held while a response is delayed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

struct mg_context;
struct mg_connection;

namespace billing::testbed {

struct KindInfo;  // a kind the double serves (kube_api_double.cpp)

class KubeApiDouble {
 public:
  /// One request as the double saw it.
  struct Request {
    std::string method;
    std::string path;   // URL-decoded, without the query
    std::string query;  // raw, without '?'
    std::string content_type;
    std::string body;
    int status = 0;  // the status the double answered
  };

  /// Starts serving on http://127.0.0.1:<free port>; throws std::runtime_error if it cannot.
  /// Plain HTTP only: Debian 12's CivetWeb 1.15 crashes serving TLS with OpenSSL 3 (it resolves
  /// SSL_get_peer_certificate, a macro since OpenSSL 3.0, to a null pointer).
  explicit KubeApiDouble(std::string token = "kube-api-double-token");
  ~KubeApiDouble();
  KubeApiDouble(const KubeApiDouble&) = delete;
  KubeApiDouble& operator=(const KubeApiDouble&) = delete;

  /// "http://127.0.0.1:PORT".
  std::string Url() const;
  const std::string& token() const { return token_; }
  /// Writes a kubeconfig whose current context points at Url() with the token.
  void WriteKubeconfig(const std::filesystem::path& path) const;

  /// The stored object as GET would return it; nullopt if absent. `ns` is empty for a Namespace.
  std::optional<nlohmann::json> Object(const std::string& api_version, const std::string& kind,
                                       const std::string& ns, const std::string& name);
  /// Every object in the namespace (not the Namespace itself), in creation order.
  std::vector<nlohmann::json> ObjectsIn(const std::string& ns);
  bool NamespaceExists(const std::string& ns);
  /// Names of the namespaces, Terminating ones included, in creation order.
  std::vector<std::string> Namespaces();
  /// Sets the status of every Deployment and StatefulSet in `ns` as their controllers would once
  /// all replicas are updated and ready.
  void MarkWorkloadsReady(const std::string& ns);
  /// The same in every namespace at once (one pass over the objects, for scale runs).
  void MarkAllWorkloadsReady();
  /// Replaces an object's status (as its controller would); false if there is no such object.
  bool SetStatus(const std::string& api_version, const std::string& kind, const std::string& ns,
                 const std::string& name, const nlohmann::json& status);
  /// Removes one namespaced object at once, as someone deleting it behind the provisioner's back
  /// would: not a request (not in Requests() or CountRequests()), and no namespace is deleted or
  /// finalized. False if there is no such object. Throws std::invalid_argument for a Namespace
  /// (deleting one is a request: it is Terminating first and takes its content with it).
  bool RemoveObject(const std::string& api_version, const std::string& kind, const std::string& ns,
                    const std::string& name);
  /// How long a deleted namespace stays Terminating before it and its content are removed.
  /// 0 (the default): removed before the next request is answered.
  void SetNamespaceFinalizationDelay(std::chrono::milliseconds delay);

  /// The next `count` requests (-1: all until ClearFailures) whose method equals `method` (empty:
  /// any) and whose path contains `path_substring` are answered with `http_status` and a Status
  /// carrying `message` (and a Retry-After header if `retry_after_seconds` >= 0), before
  /// authentication and without touching any object. Rules are tried in the order added.
  void InjectFailures(const std::string& method, const std::string& path_substring, int http_status,
                      int count, const std::string& message, int retry_after_seconds = -1);
  void ClearFailures();
  /// Every response is delayed this long (slow server).
  void SetResponseDelay(std::chrono::milliseconds delay);
  /// Every response is delayed by a time drawn uniformly from [min, max] (a real API server's
  /// latency; the draws are the same from run to run).
  void SetResponseDelay(std::chrono::milliseconds min, std::chrono::milliseconds max);
  /// While held, deleted namespaces stay Terminating whatever the finalization delay; releasing
  /// lets the due ones go before the next request is answered. The test decides when.
  void HoldNamespaceFinalization(bool held);
  /// Lets the next `pass` requests with this method (empty: any) through, then holds every further
  /// one, unanswered and not yet applied, until ReleaseHeldRequests() (or the double's end).
  void HoldRequests(const std::string& method, int pass);
  void ReleaseHeldRequests();
  /// Requests being held right now.
  int HeldRequests();

  /// From now on, authorizes every request as the API server's RBAC would for the ClusterRole in
  /// `manifest` (manifests/provisioner/20-rbac.yaml): get for GET, patch for an apply, and create
  /// too when the apply makes the object, delete for DELETE. Anything else gets 403 Forbidden and
  /// is listed in RbacDenials(). Throws std::runtime_error if the file has no ClusterRole rules.
  void EnforceRbac(const std::filesystem::path& manifest);
  std::vector<std::string> RbacDenials();
  /// Applies refused with 422 because they changed an immutable field.
  int ImmutableFieldRejections();
  /// Appends every accepted apply body (as sent, one YAML document each) to `stream`, truncated
  /// now, for a schema check of everything the client applied.
  void RecordAppliedBodies(const std::filesystem::path& stream);

  std::vector<Request> Requests();
  int CountRequests(const std::string& method, const std::string& path_substring);
  /// How many times the stored object changed (1 after its creation); 0 if it does not exist.
  int WriteCount(const std::string& api_version, const std::string& kind, const std::string& ns,
                 const std::string& name);

 private:
  struct Stored;
  struct Failure;
  struct RbacRule {
    std::set<std::string> groups, resources, verbs;
  };
  struct Route;
  struct Response;
  using Key = std::tuple<std::string, std::string, std::string, std::string>;

  static int HandleRequest(mg_connection* conn, void* self);
  Response Dispatch(const Request& request, const std::string& authorization);
  Response Serve(const Request& request, const std::string& authorization);
  Response Get(const Route& route);
  Response Apply(const Route& route, const Request& request);
  Response Create(const Route& route, const Key& key, nlohmann::json config,
                  const std::string& manager);
  Response Delete(const Route& route, const Request& request);
  void FinalizeNamespaces();              // removes the namespaces whose finalization is due
  void MarkReady(const std::string* ns);  // in `ns`, or everywhere when null
  bool Allowed(const KindInfo& info, const std::string& verb) const;
  std::optional<Response> ImmutableFieldChange(const KindInfo& info, const std::string& name,
                                               const nlohmann::json& before,
                                               const nlohmann::json& after);
  void RecordApplied(const nlohmann::json& body);
  Stored* Find(const Key& key);
  void Write(Stored& stored);  // after a change: new resourceVersion, generation if the spec moved

  const std::string token_;
  int port_ = 0;

  std::mutex mutex_;                  // guards everything below
  std::condition_variable stopping_;  // wakes delayed responses on destruction
  bool stopped_ = false;
  std::map<Key, std::unique_ptr<Stored>> objects_;
  std::map<std::string, std::chrono::steady_clock::time_point> finalize_at_;  // by namespace
  std::chrono::milliseconds finalization_delay_{0};
  std::chrono::milliseconds response_delay_{0};
  std::chrono::milliseconds response_delay_max_{0};
  std::minstd_rand delay_draws_;
  bool finalization_held_ = false;
  struct Hold {
    std::string method;
    int pass = 0;
  };
  std::optional<Hold> hold_;
  int held_ = 0;
  std::optional<std::vector<RbacRule>> rbac_;
  std::vector<std::string> rbac_denials_;
  int immutable_rejections_ = 0;
  std::filesystem::path applied_stream_;
  std::vector<Failure> failures_;
  std::vector<Request> requests_;
  std::uint64_t next_resource_version_ = 1;
  std::uint64_t next_sequence_ = 1;

  struct ContextDeleter {
    void operator()(mg_context* context) const;
  };
  // Last member: destroyed first, so no handler runs once the state goes.
  std::unique_ptr<mg_context, ContextDeleter> context_;
};

}  // namespace billing::testbed
