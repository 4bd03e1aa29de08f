// A small evaluator of Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), for the chart
// tests: given the rendered policies, may this endpoint open a connection to that one?
//
// The rules, from the API reference and kubernetes.io/docs/concepts/services-networking/
// network-policies/: a pod is isolated for ingress (egress) when some policy in its namespace
// selects it and has Ingress (Egress) among its policyTypes (absent: Ingress, plus Egress when
// the policy has egress rules); a non-isolated direction allows everything; an isolated one allows
// the union of the rules of every policy that selects the pod. A rule matches when one of its
// peers matches (none: every peer) and one of its ports does (none: every port). A peer is an
// ipBlock (cidr minus except, on the other end's IP), or a namespaceSelector and/or podSelector
// (both: pods matching the podSelector in namespaces matching the namespaceSelector; podSelector
// alone: pods of the policy's own namespace; namespaceSelector alone: every pod of the matching
// namespaces). A connection needs the source's egress and the destination's ingress to allow it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "billing/provisioner/value.h"

namespace billing::provisioner::testing {

using Labels = std::map<std::string, std::string>;

/// One end of a connection: a pod (namespace, its labels, the namespace's labels, its IP) or,
/// with `pod` false, an address outside the cluster's pods (only ipBlock peers can match it).
struct Endpoint {
  std::string name;  // for messages
  bool pod = true;
  std::string ns;
  Labels labels;
  Labels namespace_labels;                          // kubernetes.io/metadata.name is added from ns
  std::string ip;                                   // dotted IPv4
  std::map<std::string, std::int64_t> named_ports;  // the pod's container ports by name
};

/// Whether `from` may connect to `to` on `port`/`protocol` under `policies` (the NetworkPolicy
/// objects of every namespace). Throws std::invalid_argument on a policy it cannot read.
bool Allowed(const std::vector<Value>& policies, const Endpoint& from, const Endpoint& to,
             std::int64_t port, const std::string& protocol = "TCP");

/// A label selector (matchLabels, matchExpressions with In, NotIn, Exists, DoesNotExist) against
/// labels; an empty selector matches everything.
bool SelectorMatches(const Value& selector, const Labels& labels);

/// Whether the dotted IPv4 address is inside the CIDR.
bool InCidr(const std::string& ip, const std::string& cidr);

}  // namespace billing::provisioner::testing
