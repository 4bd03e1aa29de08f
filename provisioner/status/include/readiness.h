// provisioner/status: whether a Deployment or StatefulSet has rolled out, from the object as the
// Kubernetes API returns it. Pure: depends on nlohmann_json only (no libcurl, libpq, CivetWeb).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace billing::provisioner {

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
