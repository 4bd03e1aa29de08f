#include "status.h"

#include <algorithm>
#include <cmath>

namespace billing::provisioner {

bool ApplyDue(const DeploymentRow& deployment, const DeployerTiming& timing) {
  // A Ready customer is applied again now and then (drift repair): a deleted or edited Secret,
  // ConfigMap or Service comes back; identical objects are left unchanged by the API server.
  const bool stale =
      !deployment.seconds_since_apply || *deployment.seconds_since_apply >= timing.reapply_seconds;
  return deployment.applied_generation < deployment.desired_generation ||
         deployment.phase == Phase::kPending || deployment.phase == Phase::kFailed || stale;
}

Observation FailedStatus(const DeploymentRow& deployment, std::string message,
                         const DeployerTiming& timing) {
  Observation o;
  o.phase = Phase::kFailed;
  o.message = std::move(message);
  o.components = deployment.components;
  o.attempts = deployment.attempts + 1;
  o.retry_after_seconds =
      std::min(timing.failure_backoff_max_seconds,
               timing.failure_backoff_seconds * std::pow(2.0, std::min(o.attempts - 1, 20)));
  return o;
}

namespace {

std::string JoinedList(const std::vector<std::string>& items) {
  std::string text;
  for (std::size_t i = 0; i < items.size(); ++i) text += (i ? ", " : "") + items[i];
  return text;
}

}  // namespace

Observation DeriveStatus(const DeploymentRow& deployment,
                         const std::vector<WorkloadState>& workloads,
                         std::optional<std::int64_t> applied_generation,
                         const DeployerTiming& timing) {
  Observation o;
  o.applied_generation = applied_generation;
  std::vector<std::string> waiting;
  std::vector<std::string> failed;  // rollouts the controller gave up on (progress deadline)
  bool missing = false;
  for (const auto& workload : workloads) {
    nlohmann::json status = {{"kind", workload.kind}, {"name", workload.name}};
    if (!workload.live) {
      missing = true;
      status["ready"] = false;
      waiting.push_back(workload.component + " (missing)");
    } else {
      const auto readiness = ReadinessOf(*workload.live);
      status["ready"] = readiness.ready;
      status["ready_replicas"] = readiness.ready_replicas;
      status["desired_replicas"] = readiness.desired_replicas;
      if (readiness.failed) failed.push_back(workload.component + " (" + readiness.reason + ")");
      if (!readiness.ready) waiting.push_back(workload.component + " (" + readiness.reason + ")");
    }
    o.components[workload.component] = std::move(status);
  }

  if (missing) {
    // Someone deleted a workload: apply everything again on the next step.
    o.applied_generation = 0;
    o.phase = Phase::kDeploying;
    o.message = "re-applying: missing workloads";
    o.attempts = deployment.attempts + 1;  // something keeps deleting them: back off
    o.retry_after_seconds =
        std::min(timing.failure_backoff_max_seconds,
                 timing.poll_seconds * std::pow(2.0, std::min(deployment.attempts, 20)));
    return o;
  }
  if (!failed.empty()) {
    auto failure = FailedStatus(deployment, "rollout failed: " + JoinedList(failed), timing);
    failure.components = o.components;
    failure.applied_generation = o.applied_generation;
    return failure;
  }
  if (waiting.empty()) {
    o.phase = Phase::kReady;
    o.message = "all components ready";
    o.retry_after_seconds = std::min(timing.resync_seconds, timing.reapply_seconds);
  } else {
    o.phase = Phase::kDeploying;
    o.message = "waiting for " + JoinedList(waiting);
    o.retry_after_seconds = timing.poll_seconds;
  }
  return o;
}

Observation SuspendedStatus(const DeploymentRow& deployment,
                            const std::vector<WorkloadState>& workloads,
                            std::optional<std::int64_t> applied_generation,
                            const DeployerTiming& timing) {
  Observation o;
  o.phase = Phase::kSuspended;
  o.applied_generation = applied_generation;
  std::vector<std::string> running;
  for (const auto& workload : workloads) {
    nlohmann::json status = {{"kind", workload.kind}, {"name", workload.name}, {"ready", false}};
    std::int64_t pods = 0;
    if (workload.live) {
      const auto& live = *workload.live;
      const auto generation = live.value("/metadata/generation"_json_pointer, std::int64_t{0});
      const auto observed = live.value("/status/observedGeneration"_json_pointer, std::int64_t{0});
      pods = live.value("/status/replicas"_json_pointer, std::int64_t{0});
      // Until the controller has seen the scale-down, its replica count is the old one's.
      if (observed < generation && pods == 0) pods = 1;
    }
    status["ready_replicas"] = 0;
    status["desired_replicas"] = 0;
    if (pods > 0) running.push_back(workload.component + " (" + std::to_string(pods) + " pods)");
    o.components[workload.component] = std::move(status);
  }
  const std::string kept = deployment.purge_after.empty()
                               ? std::string("data kept")
                               : "data kept until " + deployment.purge_after;
  if (running.empty()) {
    o.message = "suspended: every workload scaled to zero, " + kept;
    o.retry_after_seconds = std::min(timing.resync_seconds, timing.reapply_seconds);
  } else {
    o.message = "suspending: waiting for " + JoinedList(running) + " to stop; " + kept;
    o.retry_after_seconds = timing.poll_seconds;
  }
  return o;
}

Observation TeardownStatus(const std::string& namespace_name, bool namespace_gone,
                           const DeployerTiming& timing) {
  Observation o;
  o.components = nlohmann::json::object();
  if (namespace_gone) {
    o.phase = Phase::kDeleted;
    o.message = "namespace " + namespace_name + " deleted";
    o.retry_after_seconds = -1;
  } else {
    o.phase = Phase::kDeleting;
    o.message = "waiting for namespace " + namespace_name + " to terminate";
    o.retry_after_seconds = timing.poll_seconds;
  }
  return o;
}

}  // namespace billing::provisioner
