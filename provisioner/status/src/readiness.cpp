// provisioner/status: whether a workload, as the API returns it, has rolled out.
#include "readiness.h"

#include <algorithm>
#include <stdexcept>

namespace billing::provisioner {

using Json = nlohmann::json;

namespace {

std::int64_t IntAt(const Json& object, const Json::json_pointer& pointer, std::int64_t fallback) {
  if (!object.contains(pointer)) return fallback;
  const Json& value = object.at(pointer);
  return value.is_number_integer() ? value.get<std::int64_t>() : fallback;
}

std::string StringAt(const Json& object, const Json::json_pointer& pointer) {
  if (!object.contains(pointer)) return std::string();
  const Json& value = object.at(pointer);
  return value.is_string() ? value.get<std::string>() : std::string();
}

WorkloadReadiness NotReady(WorkloadReadiness readiness, std::string reason) {
  readiness.ready = false;
  readiness.reason = std::move(reason);
  return readiness;
}

bool ProgressDeadlineExceeded(const Json& workload) {
  const Json::json_pointer pointer("/status/conditions");
  if (!workload.contains(pointer) || !workload.at(pointer).is_array()) return false;
  for (const auto& condition : workload.at(pointer)) {
    if (condition.is_object() && condition.value("type", "") == "Progressing" &&
        condition.value("reason", "") == "ProgressDeadlineExceeded") {
      return true;
    }
  }
  return false;
}

// kubectl's DeploymentStatusViewer.
WorkloadReadiness DeploymentReadiness(const Json& d, WorkloadReadiness r) {
  const std::int64_t desired = r.desired_replicas;
  const std::int64_t updated = IntAt(d, "/status/updatedReplicas"_json_pointer, 0);
  const std::int64_t total = IntAt(d, "/status/replicas"_json_pointer, 0);
  const std::int64_t available = IntAt(d, "/status/availableReplicas"_json_pointer, 0);
  if (ProgressDeadlineExceeded(d)) {
    r.failed = true;
    return NotReady(r, "deployment exceeded its progress deadline");
  }
  if (updated < desired) {
    return NotReady(
        r, std::to_string(updated) + " of " + std::to_string(desired) + " replicas updated");
  }
  if (total > updated) {
    return NotReady(r, std::to_string(total - updated) + " old replicas pending termination");
  }
  if (available < updated || available < desired) {
    return NotReady(r, std::to_string(desired - std::min(available, desired)) + " of " +
                           std::to_string(desired) + " replicas not available");
  }
  r.ready = true;
  return r;
}

// kubectl's StatefulSetStatusViewer (RollingUpdate, with partitions).
WorkloadReadiness StatefulSetReadiness(const Json& s, WorkloadReadiness r) {
  const std::int64_t desired = r.desired_replicas;
  const std::int64_t updated = IntAt(s, "/status/updatedReplicas"_json_pointer, 0);
  const std::int64_t total = IntAt(s, "/status/replicas"_json_pointer, 0);
  if (r.ready_replicas < desired) {
    return NotReady(r, std::to_string(desired - r.ready_replicas) + " of " +
                           std::to_string(desired) + " replicas not ready");
  }
  if (total > desired) {
    return NotReady(r, std::to_string(total - desired) + " replicas pending termination");
  }
  const std::int64_t partition =
      IntAt(s, "/spec/updateStrategy/rollingUpdate/partition"_json_pointer, 0);
  if (partition > 0) {
    // A partitioned rollout is complete when the pods at or above the partition are updated;
    // the revisions differ by design.
    if (updated < desired - partition) {
      return NotReady(r, std::to_string(updated) + " of " + std::to_string(desired - partition) +
                             " partitioned replicas updated");
    }
    r.ready = true;
    return r;
  }
  if (updated < desired) {
    return NotReady(
        r, std::to_string(updated) + " of " + std::to_string(desired) + " replicas updated");
  }
  const std::string current = StringAt(s, "/status/currentRevision"_json_pointer);
  const std::string update = StringAt(s, "/status/updateRevision"_json_pointer);
  if (!current.empty() && !update.empty() && current != update) {
    return NotReady(r, "rolling update to revision " + update + " in progress");
  }
  r.ready = true;
  return r;
}

}  // namespace

WorkloadReadiness ReadinessOf(const Json& workload) {
  const std::string kind = workload.is_object() ? workload.value("kind", "") : "";
  if (kind != "Deployment" && kind != "StatefulSet") {
    throw std::invalid_argument("ReadinessOf: not a Deployment or StatefulSet: \"" + kind + "\"");
  }
  WorkloadReadiness r;
  r.desired_replicas = IntAt(workload, "/spec/replicas"_json_pointer, 1);
  r.ready_replicas = IntAt(workload, "/status/readyReplicas"_json_pointer, 0);
  if (workload.contains("/metadata/deletionTimestamp"_json_pointer)) {
    return NotReady(r, "being deleted");
  }
  const std::int64_t generation = IntAt(workload, "/metadata/generation"_json_pointer, 0);
  const std::int64_t observed = IntAt(workload, "/status/observedGeneration"_json_pointer, 0);
  // Until the controller has seen the current spec, the rest of the status describes an older one.
  if (observed == 0 || observed < generation) {
    return NotReady(
        r, "waiting for the controller to observe generation " + std::to_string(generation));
  }
  return kind == "Deployment" ? DeploymentReadiness(workload, r)
                              : StatefulSetReadiness(workload, r);
}

}  // namespace billing::provisioner
