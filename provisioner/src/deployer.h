// provisioner/deploy: one level-based reconciliation step for one customer. Given the stored
// desired state it renders the stack, applies it with server-side apply (namespace first) when
// the desired generation is new, after a failure or when the last apply is older than the
// re-apply interval (drift repair), deletes the objects the chart can render but no longer does
// for these values (prune), reads the workloads' readiness and says what it observed; for a
// deletion it deletes the namespace and waits until it is gone. Every step is idempotent: applying
// the same values again changes nothing in the cluster, so a step interrupted anywhere is simply
// run again.
//
// Thread-safety: a Deployer is used by one worker thread (it uses that worker's KubeClient).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "billing/provisioner/render.h"
#include "kube_client.h"
#include "store.h"

namespace billing::provisioner {

/// Chart defaults <- the provisioner's own layer (namespace.create) <- the platform's values
/// (images, storage class, ...) <- the customer's stored values. Immutable once built; shared.
class StackRenderer {
 public:
  /// `values_schema_json` is the chart's values.schema.json (empty: UnknownValue accepts all).
  StackRenderer(std::string chart_values_yaml, std::string chart_yaml,
                std::string platform_values_yaml, const std::string& values_schema_json = "");
  Result<std::vector<KubeObject>> Render(const nlohmann::ordered_json& customer_values) const;
  /// The same customer with every optional part of the chart on (EveryOptionalPartOverlay() over
  /// the customer's values): every object the chart can render for this customer. What this gives
  /// and Render does not is what the Deployer prunes.
  Result<std::vector<KubeObject>> RenderEveryOptionalPart(
      const nlohmann::ordered_json& customer_values) const;
  /// The first key of `overrides` that the chart's values.schema.json does not allow
  /// ("mosquitto.port"), or nullopt; free-form maps (ingress.annotations) take any key. Helm
  /// refuses such keys through the schema; the renderer ignores them, so the API checks first.
  std::optional<std::string> UnknownValue(const nlohmann::json& overrides) const;

  /// The chart's switches of optional objects, all on (manifests/charts/customer-instance/
  /// values.yaml): resourceQuota.enabled (ResourceQuota), networkPolicy.enabled (NetworkPolicy),
  /// ingress.enabled (Ingress), exporter.serviceMonitor.enabled (ServiceMonitor). Plus
  /// ingress.exposeMetrics=false, which only changes the Ingress' paths, so that a customer with
  /// exposeMetrics on and the Ingress off (no basic-auth password needed then) still renders.
  /// ingress.tls.enabled renders no object of its own; namespace.create is the provisioner's
  /// own layer, always on, and the Namespace is never pruned. A new switch in the chart belongs
  /// here (service_unit_test checks that this render has every kind of the chart's templates;
  /// provisioner_manifests_test derives the RBAC delete rules from every `enabled` switch of
  /// values.yaml).
  static const nlohmann::ordered_json& EveryOptionalPartOverlay();

 private:
  Result<std::vector<KubeObject>> RenderWith(const nlohmann::ordered_json& customer_values,
                                             const nlohmann::ordered_json* overlay) const;
  std::string chart_values_yaml_;
  std::string chart_yaml_;
  std::string platform_values_yaml_;
  nlohmann::json values_schema_;
};

struct DeployerTiming {
  double poll_seconds = 2;                   // Deploying / Deleting: look again after this
  double resync_seconds = 30;                // Ready: re-check readiness (and drift) after this
  double reapply_seconds = 600;              // apply everything again once the last is this old
  double failure_backoff_seconds = 5;        // Failed: first retry; doubles per failure ...
  double failure_backoff_max_seconds = 300;  // ... up to this
};

/// Hooks for the provisioner's metrics.
struct DeployerEvents {
  std::function<void(const std::string& kind, int http_status)> apply_failed;
};

class Deployer {
 public:
  Deployer(const StackRenderer& renderer, KubeClient& kube, DeployerTiming timing,
           DeployerEvents events = {});
  Observation Step(const DeploymentRow& deployment);

 private:
  Observation Teardown(const DeploymentRow& deployment);
  /// Deletes what the chart can render for the customer but `current` lacks; a failure, if any.
  std::optional<Observation> Prune(const DeploymentRow& deployment,
                                   const std::vector<KubeObject>& current);
  Observation Failed(const DeploymentRow& deployment, std::string message) const;

  const StackRenderer& renderer_;
  KubeClient& kube_;
  DeployerTiming timing_;
  DeployerEvents events_;
};

/// "customer-{id}": the namespace every object of the customer lives in.
std::string CustomerNamespace(const std::string& customer_id);

}  // namespace billing::provisioner
