// render: chart values -> the customer's Kubernetes objects (pure).
// May not depend on: libcurl, libpq/libpqxx, CivetWeb, or any I/O component (kube, store, api,
// service).
//
// The objects come in apply order. The caller hands over the text of the chart's values.yaml and
// Chart.yaml, the -f files and the --set arguments. The Helm chart
// manifests/charts/customer-instance renders the same objects for the same values
// (tests/provisioner: parity test).
//
// Thread-safety: every function is reentrant; nothing is shared.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "billing/provisioner/customer_spec.h"
#include "billing/provisioner/result.h"
#include "billing/provisioner/value.h"

namespace billing::provisioner {

/// What the chart's templates read from Chart.yaml (.Chart.Name, .Version, .AppVersion).
struct ChartInfo {
  std::string name;
  std::string version;
  std::string app_version;
};
Result<ChartInfo> ParseChartInfo(const std::string& chart_yaml_text);

struct RenderOptions {
  /// app.kubernetes.io/managed-by (the chart's .Release.Service, "Helm" under Helm).
  std::string managed_by = "billing-provisioner";
  /// Makes postgres.password when the values leave it empty, as the chart does. Unset, an empty
  /// password is an error: the provisioner service passes every value, so its renders are
  /// deterministic and never hold a password it did not store. `provisioner render` sets it.
  std::function<std::string()> generate_password;
  /// Mosquitto's password-file hash of a broker password (identity's MosquittoPasswordHash).
  /// With generate_password, makes mosquitto.auth.*.password and passwordHash when the values
  /// leave both empty, and the hash of a given password without one. Unset, both are required.
  std::function<std::string(const std::string&)> hash_broker_password;
};

/// One object, with the identity fields pulled out of its manifest for callers (apply, prune).
struct KubeObject {
  std::string api_version;
  std::string kind;
  std::string name;
  std::string namespace_name;  // empty for cluster-scoped kinds (Namespace)
  Value manifest;
};

/// The customer's objects in apply order: Namespace (namespace.create), ResourceQuota,
/// NetworkPolicy, Secret, ConfigMaps, Services, StatefulSet, Deployments, Ingress,
/// ServiceMonitor; disabled parts are left out.
std::vector<KubeObject> RenderStack(const CustomerSpec& spec, const ChartInfo& chart,
                                    const RenderOptions& options);

/// "---\n"-separated YAML documents, one per object, byte-for-byte deterministic.
std::string ToYamlStream(const std::vector<KubeObject>& objects);

/// Everything `provisioner render` does between reading files and printing.
struct RenderRequest {
  std::string chart_values_yaml;  // manifests/charts/customer-instance/values.yaml
  std::string chart_yaml;         // manifests/charts/customer-instance/Chart.yaml
  /// The provisioner's own layer over the chart defaults: it applies objects without Helm, so
  /// it renders the Namespace itself (namespace.create=true).
  Value provisioner_values = Value(Value::Map{{"namespace", Value(Value::Map{{"create", true}})}});
  std::vector<std::pair<std::string, std::string>> value_files;  // (name for errors, text)
  std::vector<std::string> set_arguments;                        // in command-line order
  RenderOptions options;
};

/// Merges chart defaults <- provisioner layer <- files <- --set (later wins), validates and
/// renders. The error names the value (or the file or --set argument) at fault.
Result<std::vector<KubeObject>> Render(const RenderRequest& request);

/// The merged values of a request, before validation (for tests and diagnostics).
Result<Value> MergeValues(const RenderRequest& request);

}  // namespace billing::provisioner
