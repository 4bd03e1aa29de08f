// status: workloads read back + the stored deployment -> phase, message, next look (pure).
// May not depend on: libcurl, libpq/libpqxx, CivetWeb, or any I/O component (kube, store, api,
// service).
//
// What one reconciliation step concludes: the deployer reads and applies, then asks this for the
// phase, the message, the components and when to look again.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "deployment_state.h"
#include "readiness.h"

namespace billing::provisioner {

struct DeployerTiming {
  double poll_seconds = 2;                   // Deploying / Deleting: look again after this
  double resync_seconds = 30;                // Ready: re-check readiness (and drift) after this
  double reapply_seconds = 600;              // apply everything again once the last is this old
  double failure_backoff_seconds = 5;        // Failed: first retry; doubles per failure ...
  double failure_backoff_max_seconds = 300;  // ... up to this
  double step_timeout_seconds = 60;          // every Kubernetes request of one step ends by this
};

/// Whether this step applies the rendered objects: a new desired generation, a Pending or Failed
/// deployment, or the last apply older than the re-apply interval (drift repair; no recorded
/// apply time counts as due).
bool ApplyDue(const DeploymentRow& deployment, const DeployerTiming& timing);

/// Failed, one attempt more, retried after a backoff that doubles per attempt up to the cap.
Observation FailedStatus(const DeploymentRow& deployment, std::string message,
                         const DeployerTiming& timing);

/// One workload of the rendered stack as read back: `live` is nullopt when the API has no such
/// object (someone deleted it).
struct WorkloadState {
  std::string kind;       // Deployment or StatefulSet
  std::string name;       // customer-{id}-postgres
  std::string component;  // postgres (the name without "customer-{id}-")
  std::optional<nlohmann::json> live;
};

/// The conclusion of a present deployment's step after the apply (if any) succeeded:
/// `applied_generation` is the generation applied in this step (nullopt: none). A missing
/// workload means re-apply (Deploying, with backoff), a rollout past its progress deadline is
/// Failed, all ready is Ready (resync later), else Deploying (poll).
Observation DeriveStatus(const DeploymentRow& deployment,
                         const std::vector<WorkloadState>& workloads,
                         std::optional<std::int64_t> applied_generation,
                         const DeployerTiming& timing);

/// The conclusion of a suspended deployment's step after the scaled-down apply (if any):
/// Suspended, looked at again after a poll while pods still run, else after a resync (a scaled
/// workload someone scaled up again is scaled down by the next apply).
Observation SuspendedStatus(const DeploymentRow& deployment,
                            const std::vector<WorkloadState>& workloads,
                            std::optional<std::int64_t> applied_generation,
                            const DeployerTiming& timing);

/// The conclusion of a deletion's step: Deleted (never look again) once the namespace is gone,
/// else Deleting (poll).
Observation TeardownStatus(const std::string& namespace_name, bool namespace_gone,
                           const DeployerTiming& timing);

}  // namespace billing::provisioner
