// provisioner/render: the customer's stack as `provisioner serve` renders it, from the chart's
// files read once and each customer's stored values. Pure: no libcurl, libpq or CivetWeb.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "billing/provisioner/render.h"

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

}  // namespace billing::provisioner
