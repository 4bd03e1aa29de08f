#include "stack_renderer.h"

#include "value_json.h"

namespace billing::provisioner {

StackRenderer::StackRenderer(std::string chart_values_yaml, std::string chart_yaml,
                             std::string platform_values_yaml,
                             const std::string& values_schema_json)
    : chart_values_yaml_(std::move(chart_values_yaml)),
      chart_yaml_(std::move(chart_yaml)),
      platform_values_yaml_(std::move(platform_values_yaml)),
      values_schema_(nlohmann::json::parse(values_schema_json, nullptr, false)) {
  if (values_schema_.is_discarded() || !values_schema_.is_object()) values_schema_ = nullptr;
}

namespace {

// The subschema a "$ref": "#/definitions/name" points to (the chart's schema uses no other form).
const nlohmann::json& Resolve(const nlohmann::json& root, const nlohmann::json& node) {
  if (node.is_object() && node.contains("$ref") && node["$ref"].is_string()) {
    const auto& ref = node["$ref"].get_ref<const std::string&>();
    const std::string prefix = "#/definitions/";
    if (ref.starts_with(prefix) && root.contains("definitions") &&
        root["definitions"].contains(ref.substr(prefix.size()))) {
      return root["definitions"][ref.substr(prefix.size())];
    }
  }
  return node;
}

// Walks the overrides along values.schema.json: a key is unknown where the schema lists the
// properties and allows no others. Top-level keys must be the chart's (Helm would take any).
std::optional<std::string> FirstUnknown(const nlohmann::json& root, const nlohmann::json& schema,
                                        const nlohmann::json& overrides,
                                        const std::string& prefix) {
  if (!overrides.is_object() || !schema.is_object()) return std::nullopt;
  const bool closed = prefix.empty() || (schema.contains("additionalProperties") &&
                                         schema["additionalProperties"] == false);
  for (const auto& [key, value] : overrides.items()) {
    if (schema.contains("properties") && schema["properties"].contains(key)) {
      const auto& child = Resolve(root, schema["properties"][key]);
      if (auto unknown = FirstUnknown(root, child, value, prefix + key + ".")) return unknown;
    } else if (closed) {
      return prefix + key;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> StackRenderer::UnknownValue(const nlohmann::json& overrides) const {
  if (values_schema_.is_null()) return std::nullopt;
  return FirstUnknown(values_schema_, values_schema_, overrides, "");
}

const nlohmann::ordered_json& StackRenderer::EveryOptionalPartOverlay() {
  // Documented in stack_renderer.h; keep in step with the chart's values.yaml.
  static const nlohmann::ordered_json overlay = {
      {"resourceQuota", {{"enabled", true}}},
      {"networkPolicy", {{"enabled", true}}},
      {"ingress", {{"enabled", true}, {"exposeMetrics", false}}},
      {"exporter", {{"serviceMonitor", {{"enabled", true}}}}},
  };
  return overlay;
}

Result<std::vector<KubeObject>> StackRenderer::Render(
    const nlohmann::ordered_json& customer_values) const {
  return RenderWith(customer_values, nullptr);
}

Result<std::vector<KubeObject>> StackRenderer::RenderEveryOptionalPart(
    const nlohmann::ordered_json& customer_values) const {
  return RenderWith(customer_values, &EveryOptionalPartOverlay());
}

Result<std::vector<KubeObject>> StackRenderer::RenderWith(
    const nlohmann::ordered_json& customer_values, const nlohmann::ordered_json* overlay) const {
  RenderRequest request;
  request.chart_values_yaml = chart_values_yaml_;
  request.chart_yaml = chart_yaml_;
  if (!platform_values_yaml_.empty()) {
    request.value_files.emplace_back("platform values", platform_values_yaml_);
  }
  // The provisioner applies the objects itself, so it always renders the Namespace: after the
  // customer's values, so that no platform or customer value can turn it off.
  Value values = FromJson(customer_values);
  if (values.IsMap()) MergeInto(values, request.provisioner_values);
  request.value_files.emplace_back("customer values", EmitYaml(values));
  if (overlay)
    request.value_files.emplace_back("every optional part", EmitYaml(FromJson(*overlay)));
  return billing::provisioner::Render(request);
}

}  // namespace billing::provisioner
