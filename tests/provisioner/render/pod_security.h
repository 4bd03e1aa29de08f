// The Pod Security Standards' "restricted" profile (which includes "baseline"), checked on pod
// specs the way Pod Security Admission checks them: written from the published rules
// (kubernetes.io/docs/concepts/security/pod-security-standards/, policy version 1.31).
#pragma once

#include <string>
#include <vector>

#include "billing/provisioner/value.h"

namespace billing::provisioner::testing {

/// A pod spec found in a rendered object: "Kind/name" and the spec (Pod's own, else the
/// template's, a CronJob's job template's).
struct PodSpecOf {
  std::string owner;
  const Value* spec;
};

/// Every pod spec in `objects` (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
/// CronJob).
std::vector<PodSpecOf> PodSpecs(const std::vector<Value>& objects);

/// Each rule of the restricted profile the pod spec breaks, as "owner: field: why"; empty when
/// the pod would be admitted by a namespace enforcing restricted.
std::vector<std::string> RestrictedViolations(const PodSpecOf& pod);

}  // namespace billing::provisioner::testing
