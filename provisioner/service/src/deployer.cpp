#include "deployer.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

#include "value_json.h"

namespace billing::provisioner {

std::string CustomerNamespace(const std::string& customer_id) { return "customer-" + customer_id; }

Deployer::Deployer(const StackRenderer& renderer, KubeClient& kube, DeployerTiming timing,
                   DeployerEvents events)
    : renderer_(renderer), kube_(kube), timing_(timing), events_(std::move(events)) {}

namespace {

std::string Describe(const KubeApiError& e) {
  if (e.status() == 0) return "Kubernetes API unreachable: " + e.api_message();
  return "HTTP " + std::to_string(e.status()) + (e.reason().empty() ? "" : " " + e.reason()) +
         ": " + e.api_message();
}

bool IsWorkload(const KubeObject& object) {
  return object.kind == "Deployment" || object.kind == "StatefulSet";
}

}  // namespace

Observation Deployer::Failed(const DeploymentRow& deployment, std::string message) const {
  Observation o;
  o.phase = "Failed";
  o.message = std::move(message);
  o.components = deployment.components;
  o.attempts = deployment.attempts + 1;
  o.retry_after_seconds =
      std::min(timing_.failure_backoff_max_seconds,
               timing_.failure_backoff_seconds * std::pow(2.0, std::min(o.attempts - 1, 20)));
  return o;
}

Observation Deployer::Step(const DeploymentRow& deployment) {
  if (deployment.desired_state == "absent") return Teardown(deployment);

  const auto objects = renderer_.Render(deployment.chart_values);
  if (!objects.ok()) return Failed(deployment, "render: " + objects.error());

  Observation o;
  // A Ready customer is applied again now and then (drift repair): a deleted or edited Secret,
  // ConfigMap or Service comes back; identical objects are left unchanged by the API server.
  // No recorded apply time (applied before the column existed) counts as due.
  const bool stale =
      !deployment.seconds_since_apply || *deployment.seconds_since_apply >= timing_.reapply_seconds;
  const bool apply = deployment.applied_generation < deployment.desired_generation ||
                     deployment.phase == "Pending" || deployment.phase == "Failed" || stale;
  if (apply) {
    for (const auto& object : objects.value()) {
      try {
        kube_.Apply(nlohmann::json::parse(ToJson(object.manifest).dump()));
      } catch (const KubeApiError& e) {
        if (events_.apply_failed) events_.apply_failed(object.kind, e.status());
        const auto where =
            object.namespace_name.empty() ? object.name : object.namespace_name + "/" + object.name;
        return Failed(deployment, "apply " + object.kind + " " + where + ": " + Describe(e));
      }
    }
    if (auto failure = Prune(deployment, objects.value())) return std::move(*failure);
    o.applied_generation = deployment.desired_generation;
  }

  std::vector<std::string> waiting;
  std::vector<std::string> failed;  // rollouts the controller gave up on (progress deadline)
  bool missing = false;
  const std::string prefix = "customer-" + deployment.customer_id + "-";
  for (const auto& object : objects.value()) {
    if (!IsWorkload(object)) continue;
    const auto component =
        object.name.starts_with(prefix) ? object.name.substr(prefix.size()) : object.name;
    std::optional<nlohmann::json> live;
    try {
      live = kube_.Get(object.api_version, object.kind, object.namespace_name, object.name);
    } catch (const KubeApiError& e) {
      return Failed(deployment, "read " + object.kind + " " + object.name + ": " + Describe(e));
    }
    nlohmann::json status = {{"kind", object.kind}, {"name", object.name}};
    if (!live) {
      missing = true;
      status["ready"] = false;
      waiting.push_back(component + " (missing)");
    } else {
      const auto readiness = ReadinessOf(*live);
      status["ready"] = readiness.ready;
      status["ready_replicas"] = readiness.ready_replicas;
      status["desired_replicas"] = readiness.desired_replicas;
      if (readiness.failed) failed.push_back(component + " (" + readiness.reason + ")");
      if (!readiness.ready) waiting.push_back(component + " (" + readiness.reason + ")");
    }
    o.components[component] = std::move(status);
  }

  if (missing) {
    // Someone deleted a workload: apply everything again on the next step.
    o.applied_generation = 0;
    o.phase = "Deploying";
    o.message = "re-applying: missing workloads";
    o.attempts = deployment.attempts + 1;  // something keeps deleting them: back off
    o.retry_after_seconds =
        std::min(timing_.failure_backoff_max_seconds,
                 timing_.poll_seconds * std::pow(2.0, std::min(deployment.attempts, 20)));
    return o;
  }
  if (!failed.empty()) {
    std::string message = "rollout failed: ";
    for (std::size_t i = 0; i < failed.size(); ++i) message += (i ? ", " : "") + failed[i];
    auto failure = Failed(deployment, std::move(message));
    failure.components = o.components;
    failure.applied_generation = o.applied_generation;
    return failure;
  }
  if (waiting.empty()) {
    o.phase = "Ready";
    o.message = "all components ready";
    o.retry_after_seconds = std::min(timing_.resync_seconds, timing_.reapply_seconds);
  } else {
    o.phase = "Deploying";
    o.message = "waiting for ";
    for (std::size_t i = 0; i < waiting.size(); ++i) {
      o.message += (i ? ", " : "") + waiting[i];
    }
    o.retry_after_seconds = timing_.poll_seconds;
  }
  return o;
}

std::optional<Observation> Deployer::Prune(const DeploymentRow& deployment,
                                           const std::vector<KubeObject>& current) {
  const auto candidates = renderer_.RenderEveryOptionalPart(deployment.chart_values);
  if (!candidates.ok()) {
    return Failed(deployment, "render with every optional part on: " + candidates.error());
  }
  using Identity = std::tuple<std::string, std::string, std::string, std::string>;
  const auto identity = [](const KubeObject& object) {
    return Identity{object.api_version, object.kind, object.namespace_name, object.name};
  };
  std::set<Identity> rendered;
  for (const auto& object : current) rendered.insert(identity(object));
  // In reverse apply order (the Ingress before the NetworkPolicy that fences the namespace).
  const auto& all = candidates.value();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const KubeObject& object = *it;
    // The namespace holds everything; only a teardown removes it.
    if (object.kind == "Namespace" || object.namespace_name.empty()) continue;
    if (rendered.count(identity(object)) != 0) continue;
    try {
      kube_.Delete(object.api_version, object.kind, object.namespace_name, object.name);
    } catch (const KubeApiError& e) {
      if (events_.apply_failed) events_.apply_failed(object.kind, e.status());
      return Failed(deployment, "delete " + object.kind + " " + object.namespace_name + "/" +
                                    object.name + ": " + Describe(e));
    }
  }
  return std::nullopt;
}

Observation Deployer::Teardown(const DeploymentRow& deployment) {
  const auto name = CustomerNamespace(deployment.customer_id);
  Observation o;
  o.components = nlohmann::json::object();
  try {
    const auto live = kube_.Get("v1", "Namespace", "", name);
    if (!live) {
      o.phase = "Deleted";
      o.message = "namespace " + name + " deleted";
      o.retry_after_seconds = -1;
      return o;
    }
    if (!live->contains("metadata") || !(*live)["metadata"].contains("deletionTimestamp")) {
      kube_.DeleteNamespace(name);
    }
  } catch (const KubeApiError& e) {
    if (events_.apply_failed) events_.apply_failed("Namespace", e.status());
    return Failed(deployment, "delete namespace " + name + ": " + Describe(e));
  }
  o.phase = "Deleting";
  o.message = "waiting for namespace " + name + " to terminate";
  o.retry_after_seconds = timing_.poll_seconds;
  return o;
}

}  // namespace billing::provisioner
