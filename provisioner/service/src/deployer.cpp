#include "deployer.h"

#include <chrono>
#include <set>
#include <tuple>

#include "value_json.h"

namespace billing::provisioner {

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
  return FailedStatus(deployment, std::move(message), timing_);
}

Observation Deployer::Step(const DeploymentRow& deployment) {
  // However the API behaves (it may stop answering without closing connections) and however
  // many retries each request has, the step ends by its deadline and the worker moves on.
  struct StepDeadline {
    KubeClient& kube;
    ~StepDeadline() { kube.SetDeadline(std::nullopt); }
  } deadline{kube_};
  kube_.SetDeadline(
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(static_cast<std::int64_t>(timing_.step_timeout_seconds * 1000)));
  if (deployment.desired_state == DesiredState::kAbsent) return Teardown(deployment);

  const auto objects = renderer_.Render(deployment.chart_values);
  if (!objects.ok()) return Failed(deployment, "render: " + objects.error());

  // Suspended: the same objects with every workload at zero replicas. The namespace, its Secret
  // and the StatefulSet's volume stay, so a restore is an apply of the stack as it was.
  const bool suspended = deployment.desired_state == DesiredState::kSuspended;
  std::optional<std::int64_t> applied_generation;
  if (ApplyDue(deployment, timing_)) {
    if (auto failure = ApplyAll(deployment, objects.value(), suspended)) {
      return std::move(*failure);
    }
    if (auto failure = Prune(deployment, objects.value())) return std::move(*failure);
    applied_generation = deployment.desired_generation;
  }
  std::vector<WorkloadState> workloads;
  if (auto failure = ReadWorkloads(deployment, objects.value(), workloads)) {
    return std::move(*failure);
  }
  if (suspended) return SuspendedStatus(deployment, workloads, applied_generation, timing_);
  return DeriveStatus(deployment, workloads, applied_generation, timing_);
}

std::optional<Observation> Deployer::ApplyAll(const DeploymentRow& deployment,
                                              const std::vector<KubeObject>& objects,
                                              bool scaled_to_zero) {
  for (const auto& object : objects) {
    try {
      auto body = nlohmann::json::parse(ToJson(object.manifest).dump());
      if (scaled_to_zero && IsWorkload(object)) body["spec"]["replicas"] = 0;
      kube_.Apply(body);
    } catch (const KubeApiError& e) {
      if (events_.apply_failed) events_.apply_failed(object.kind, e.status());
      const auto where =
          object.namespace_name.empty() ? object.name : object.namespace_name + "/" + object.name;
      return Failed(deployment, "apply " + object.kind + " " + where + ": " + Describe(e));
    }
  }
  return std::nullopt;
}

std::optional<Observation> Deployer::ReadWorkloads(const DeploymentRow& deployment,
                                                   const std::vector<KubeObject>& objects,
                                                   std::vector<WorkloadState>& workloads) {
  const std::string prefix = CustomerNamespace(deployment.customer_id) + "-";
  for (const auto& object : objects) {
    if (!IsWorkload(object)) continue;
    WorkloadState workload{
        object.kind, object.name,
        object.name.starts_with(prefix) ? object.name.substr(prefix.size()) : object.name,
        std::nullopt};
    try {
      workload.live =
          kube_.Get(object.api_version, object.kind, object.namespace_name, object.name);
    } catch (const KubeApiError& e) {
      return Failed(deployment, "read " + object.kind + " " + object.name + ": " + Describe(e));
    }
    workloads.push_back(std::move(workload));
  }
  return std::nullopt;
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
  try {
    const auto live = kube_.Get("v1", "Namespace", "", name);
    if (!live) return TeardownStatus(name, /*namespace_gone=*/true, timing_);
    if (!live->contains("metadata") || !(*live)["metadata"].contains("deletionTimestamp")) {
      kube_.DeleteNamespace(name);
    }
  } catch (const KubeApiError& e) {
    if (events_.apply_failed) events_.apply_failed("Namespace", e.status());
    return Failed(deployment, "delete namespace " + name + ": " + Describe(e));
  }
  return TeardownStatus(name, /*namespace_gone=*/false, timing_);
}

}  // namespace billing::provisioner
