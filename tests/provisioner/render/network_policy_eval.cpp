#include "network_policy_eval.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace billing::provisioner::testing {

namespace {

const Value* At(const Value* value, std::string_view key) {
  return value != nullptr && value->IsMap() ? value->Find(key) : nullptr;
}
std::string Text(const Value* value) {
  if (value == nullptr) return "";
  auto text = ScalarText(*value);
  return text ? *text : std::string();
}
const Value::List& Items(const Value* value) {
  static const Value::List kNone;
  return value != nullptr && value->IsList() ? value->AsList() : kNone;
}

std::uint32_t ParseIpv4(const std::string& text) {
  std::istringstream in(text);
  std::uint32_t address = 0;
  for (int i = 0; i < 4; ++i) {
    int octet = -1;
    char dot = '.';
    if (i > 0 && !(in >> dot)) throw std::invalid_argument("not an IPv4 address: " + text);
    if (!(in >> octet) || dot != '.' || octet < 0 || octet > 255) {
      throw std::invalid_argument("not an IPv4 address: " + text);
    }
    address = (address << 8) | static_cast<std::uint32_t>(octet);
  }
  return address;
}

Labels NamespaceLabels(const Endpoint& endpoint) {
  Labels labels = endpoint.namespace_labels;
  labels["kubernetes.io/metadata.name"] = endpoint.ns;  // set by the API server on every namespace
  return labels;
}

// Whether `peer` (of a policy in namespace `policy_ns`) designates `other`.
bool PeerMatches(const Value& peer, const std::string& policy_ns, const Endpoint& other) {
  if (const Value* block = At(&peer, "ipBlock")) {
    if (other.ip.empty() || !InCidr(other.ip, Text(At(block, "cidr")))) return false;
    const auto& except = Items(At(block, "except"));
    return std::none_of(except.begin(), except.end(),
                        [&](const Value& cidr) { return InCidr(other.ip, Text(&cidr)); });
  }
  const Value* namespaces = At(&peer, "namespaceSelector");
  const Value* pods = At(&peer, "podSelector");
  if (namespaces == nullptr && pods == nullptr) {
    throw std::invalid_argument("a peer without ipBlock, namespaceSelector or podSelector");
  }
  if (!other.pod) return false;
  if (namespaces != nullptr) {
    if (!SelectorMatches(*namespaces, NamespaceLabels(other))) return false;
  } else if (other.ns != policy_ns) {
    return false;
  }
  return pods == nullptr || SelectorMatches(*pods, other.labels);
}

bool PortMatches(const Value& rule_port, const Endpoint& destination, std::int64_t port,
                 const std::string& protocol) {
  const std::string rule_protocol =
      At(&rule_port, "protocol") ? Text(At(&rule_port, "protocol")) : std::string("TCP");
  if (rule_protocol != protocol) return false;
  const Value* number = At(&rule_port, "port");
  if (number == nullptr) return true;  // every port of that protocol
  std::int64_t first = 0;
  if (number->IsString()) {
    const auto named = destination.named_ports.find(number->AsString());
    if (named == destination.named_ports.end()) return false;
    first = named->second;
  } else {
    first = static_cast<std::int64_t>(std::stoll(Text(number)));
  }
  const Value* end_port = At(&rule_port, "endPort");
  const std::int64_t last = end_port != nullptr ? std::stoll(Text(end_port)) : first;
  return port >= first && port <= last;
}

bool RuleMatches(const Value& rule, const char* peers_key, const std::string& policy_ns,
                 const Endpoint& peer, const Endpoint& destination, std::int64_t port,
                 const std::string& protocol) {
  const Value* peers = At(&rule, peers_key);
  const bool peer_ok =
      peers == nullptr || Items(peers).empty() ||
      std::any_of(Items(peers).begin(), Items(peers).end(),
                  [&](const Value& candidate) { return PeerMatches(candidate, policy_ns, peer); });
  if (!peer_ok) return false;
  const Value* ports = At(&rule, "ports");
  return ports == nullptr || Items(ports).empty() ||
         std::any_of(Items(ports).begin(), Items(ports).end(), [&](const Value& candidate) {
           return PortMatches(candidate, destination, port, protocol);
         });
}

bool HasType(const Value& spec, const std::string& type) {
  const Value* types = At(&spec, "policyTypes");
  if (types == nullptr) return type == "Ingress" || At(&spec, "egress") != nullptr;
  const auto& items = Items(types);
  return std::any_of(items.begin(), items.end(),
                     [&](const Value& item) { return Text(&item) == type; });
}

// Direction "Ingress" (subject = destination, peer = source) or "Egress" (the reverse).
bool DirectionAllows(const std::vector<Value>& policies, const std::string& direction,
                     const Endpoint& subject, const Endpoint& peer, const Endpoint& destination,
                     std::int64_t port, const std::string& protocol) {
  if (!subject.pod) return true;  // policies only isolate pods
  bool isolated = false;
  for (const auto& policy : policies) {
    if (Text(policy.Find("kind")) != "NetworkPolicy") continue;
    const std::string policy_ns = Text(policy.FindPath("metadata.namespace"));
    const Value* spec = policy.Find("spec");
    if (policy_ns != subject.ns || spec == nullptr) continue;
    const Value* selector = At(spec, "podSelector");
    if (selector == nullptr) throw std::invalid_argument("a NetworkPolicy without podSelector");
    if (!SelectorMatches(*selector, subject.labels) || !HasType(*spec, direction)) continue;
    isolated = true;
    const char* rules_key = direction == "Ingress" ? "ingress" : "egress";
    const char* peers_key = direction == "Ingress" ? "from" : "to";
    for (const auto& rule : Items(At(spec, rules_key))) {
      if (RuleMatches(rule, peers_key, policy_ns, peer, destination, port, protocol)) return true;
    }
  }
  return !isolated;
}

}  // namespace

bool InCidr(const std::string& ip, const std::string& cidr) {
  const auto slash = cidr.find('/');
  if (slash == std::string::npos) throw std::invalid_argument("not a CIDR: " + cidr);
  const int bits = std::stoi(cidr.substr(slash + 1));
  if (bits < 0 || bits > 32) throw std::invalid_argument("not a CIDR: " + cidr);
  const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
  return (ParseIpv4(ip) & mask) == (ParseIpv4(cidr.substr(0, slash)) & mask);
}

bool SelectorMatches(const Value& selector, const Labels& labels) {
  if (const Value* match_labels = At(&selector, "matchLabels")) {
    for (const auto& [key, value] : match_labels->AsMap()) {
      const auto found = labels.find(key);
      if (found == labels.end() || found->second != Text(&value)) return false;
    }
  }
  for (const auto& expression : Items(At(&selector, "matchExpressions"))) {
    const std::string key = Text(At(&expression, "key"));
    const std::string op = Text(At(&expression, "operator"));
    const auto found = labels.find(key);
    const auto& values = Items(At(&expression, "values"));
    const bool in_values = found != labels.end() &&
                           std::any_of(values.begin(), values.end(),
                                       [&](const Value& v) { return Text(&v) == found->second; });
    if (op == "In" && !in_values) return false;
    if (op == "NotIn" && in_values) return false;
    if (op == "Exists" && found == labels.end()) return false;
    if (op == "DoesNotExist" && found != labels.end()) return false;
    if (op != "In" && op != "NotIn" && op != "Exists" && op != "DoesNotExist") {
      throw std::invalid_argument("unknown selector operator " + op);
    }
  }
  return true;
}

bool Allowed(const std::vector<Value>& policies, const Endpoint& from, const Endpoint& to,
             std::int64_t port, const std::string& protocol) {
  return DirectionAllows(policies, "Egress", from, to, to, port, protocol) &&
         DirectionAllows(policies, "Ingress", to, from, to, port, protocol);
}

}  // namespace billing::provisioner::testing
