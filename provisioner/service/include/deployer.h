// service/deployer: one level-based reconciliation step for one customer. Given the stored
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

#include "billing/common/customer_id.h"
#include "billing/provisioner/render.h"
#include "kube_client.h"
#include "stack_renderer.h"
#include "status.h"  // DeployerTiming, DeriveStatus
#include "store.h"

namespace billing::provisioner {

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
  /// Server-side apply of every object in order (`scaled_to_zero`: Deployments and StatefulSets
  /// with zero replicas); the failure, if any.
  std::optional<Observation> ApplyAll(const DeploymentRow& deployment,
                                      const std::vector<KubeObject>& objects, bool scaled_to_zero);
  /// GET of every workload among `objects` into `workloads`; the failure, if any.
  std::optional<Observation> ReadWorkloads(const DeploymentRow& deployment,
                                           const std::vector<KubeObject>& objects,
                                           std::vector<WorkloadState>& workloads);
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
using common::CustomerNamespace;

}  // namespace billing::provisioner
