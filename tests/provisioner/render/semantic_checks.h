// The checks the Kubernetes API server (and the controllers that act on the objects) would make
// that the JSON schemas cannot: name and label syntax, quantities, selectors that match pod
// labels, Service target ports that name real container ports, Ingress and ServiceMonitor
// references that name real Services and ports, Secret/ConfigMap references that exist,
// everything in namespace customer-{id}, and that the quota holds the workloads.
#pragma once

#include <string>
#include <vector>

#include "billing/provisioner/value.h"

namespace billing::provisioner::testing {

/// Every problem found in a rendered set of objects, one message each; empty when all is well.
std::vector<std::string> SemanticProblems(const std::vector<Value>& objects,
                                          const std::string& customer_id);

/// A Kubernetes quantity in base units (cores, bytes); throws std::invalid_argument if malformed.
double QuantityValue(const std::string& quantity);

}  // namespace billing::provisioner::testing
