#include "semantic_checks.h"

#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>

#include "billing/provisioner/value.h"

namespace billing::provisioner::testing {
namespace {

// The API server's syntax rules, written here from Kubernetes' own definitions
// (k8s.io/apimachinery/pkg/util/validation and api/resource) rather than taken from the
// provisioner: a bug in the product's validators must not be able to hide behind them.
bool IsDns1123Label(const std::string& text) {
  static const std::regex kLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return text.size() <= 63 && std::regex_match(text, kLabel);
}

bool IsDns1123Subdomain(const std::string& text) {
  static const std::regex kSubdomain(
      "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
  return text.size() <= 253 && std::regex_match(text, kSubdomain);
}

// Label and annotation keys: [DNS-1123 subdomain '/'] name, name at most 63 characters.
bool IsQualifiedName(const std::string& text) {
  static const std::regex kName("([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]");
  const auto slash = text.find('/');
  const std::string name = slash == std::string::npos ? text : text.substr(slash + 1);
  if (slash != std::string::npos && (slash == 0 || !IsDns1123Subdomain(text.substr(0, slash)))) {
    return false;
  }
  return !name.empty() && name.size() <= 63 && std::regex_match(name, kName);
}

// resource.Quantity: <signed number><suffix>, the suffix binary SI (Ki..Ei), decimal SI
// (n, u, m, "", k, M, G, T, P, E) or a decimal exponent (e3, E-2).
bool IsQuantity(const std::string& text) {
  static const std::regex kQuantity(
      "[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?");
  return std::regex_match(text, kQuantity);
}

}  // namespace

double QuantityValue(const std::string& quantity) {
  if (!IsQuantity(quantity)) throw std::invalid_argument("not a quantity: " + quantity);
  static const std::map<std::string, double> kSuffixes = {{"", 1},
                                                          {"n", 1e-9},
                                                          {"u", 1e-6},
                                                          {"m", 1e-3},
                                                          {"k", 1e3},
                                                          {"M", 1e6},
                                                          {"G", 1e9},
                                                          {"T", 1e12},
                                                          {"P", 1e15},
                                                          {"E", 1e18},
                                                          {"Ki", 1024.0},
                                                          {"Mi", std::pow(1024.0, 2)},
                                                          {"Gi", std::pow(1024.0, 3)},
                                                          {"Ti", std::pow(1024.0, 4)},
                                                          {"Pi", std::pow(1024.0, 5)},
                                                          {"Ei", std::pow(1024.0, 6)}};
  std::size_t end = 0;
  const double number = std::stod(quantity, &end);  // also consumes an e/E exponent
  const auto suffix = kSuffixes.find(quantity.substr(end));
  if (suffix == kSuffixes.end()) throw std::invalid_argument("bad suffix: " + quantity);
  return number * suffix->second;
}

namespace {

std::string Text(const Value* value) {
  if (value == nullptr) return "";
  auto text = ScalarText(*value);
  return text ? *text : "";
}

bool IsLabelValue(const std::string& text) {
  static const std::regex kValue("(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?");
  return text.size() <= 63 && std::regex_match(text, kValue);
}

bool IsDns1035Label(const std::string& text) {
  static const std::regex kLabel("[a-z]([-a-z0-9]*[a-z0-9])?");
  return text.size() <= 63 && std::regex_match(text, kLabel);
}

// IANA_SVC_NAME: what port names must be (containers and Services).
bool IsPortName(const std::string& text) {
  static const std::regex kName("[a-z0-9]([a-z0-9-]*[a-z0-9])?");
  static const std::regex kLetter(".*[a-z].*");
  return text.size() <= 15 && std::regex_match(text, kName) && std::regex_match(text, kLetter) &&
         text.find("--") == std::string::npos;
}

bool Contains(const Value& labels, const Value& selector) {
  if (!selector.IsMap() || !labels.IsMap()) return false;
  for (const auto& [key, value] : selector.AsMap()) {
    const Value* label = labels.Find(key);
    if (label == nullptr || !(*label == value)) return false;
  }
  return true;
}

const Value::List& ListAt(const Value& value, const std::string& path) {
  static const Value::List kEmpty;
  const Value* found = value.FindPath(path);
  return found != nullptr && found->IsList() ? found->AsList() : kEmpty;
}

class Checker {
 public:
  Checker(const std::vector<Value>& objects, const std::string& customer_id)
      : objects_(objects), namespace_("customer-" + customer_id) {}

  std::vector<std::string> Run() {
    for (const auto& object : objects_) CheckObject(object);
    for (const auto& object : objects_) CheckReferences(object);
    CheckQuota();
    return problems_;
  }

 private:
  void Problem(const Value& object, const std::string& what) {
    problems_.push_back(Text(object.Find("kind")) + "/" + Text(object.FindPath("metadata.name")) +
                        ": " + what);
  }

  void CheckLabelsAndAnnotations(const Value& object, const Value* metadata,
                                 const std::string& where) {
    if (metadata == nullptr) return;
    if (const Value* labels = metadata->Find("labels"); labels != nullptr && labels->IsMap()) {
      for (const auto& [key, value] : labels->AsMap()) {
        if (!IsQualifiedName(key)) Problem(object, where + " label key " + key);
        if (!value.IsString() || !IsLabelValue(value.AsString())) {
          Problem(object, where + " label " + key + " value " + Text(&value));
        }
      }
    }
    if (const Value* annotations = metadata->Find("annotations");
        annotations != nullptr && annotations->IsMap()) {
      for (const auto& [key, value] : annotations->AsMap()) {
        if (!IsQualifiedName(key)) Problem(object, where + " annotation key " + key);
        if (!value.IsString()) Problem(object, where + " annotation " + key + " is not a string");
      }
    }
  }

  void CheckSelector(const Value& object, const Value* selector, const std::string& where) {
    if (selector == nullptr || !selector->IsMap()) return;
    for (const auto& [key, value] : selector->AsMap()) {
      if (!IsQualifiedName(key) || !value.IsString() || !IsLabelValue(value.AsString())) {
        Problem(object, where + " selector " + key + "=" + Text(&value));
      }
    }
  }

  void CheckQuantity(const Value& object, const Value* quantity, const std::string& where) {
    if (quantity == nullptr || !IsQuantity(Text(quantity))) {
      Problem(object, where + " is not a quantity: " + Text(quantity));
    }
  }

  void CheckObject(const Value& object) {
    const std::string kind = Text(object.Find("kind"));
    const std::string name = Text(object.FindPath("metadata.name"));
    const bool label_named = kind == "Namespace" || kind == "Service";
    if (kind == "Service" ? !IsDns1035Label(name)
        : label_named     ? !IsDns1123Label(name)
                          : !IsDns1123Subdomain(name)) {
      Problem(object, "invalid name");
    }
    if (kind == "Namespace") {
      if (name != namespace_) Problem(object, "namespace is not " + namespace_);
      if (object.FindPath("metadata.namespace") != nullptr) Problem(object, "namespaced Namespace");
    } else if (Text(object.FindPath("metadata.namespace")) != namespace_) {
      Problem(object, "not in namespace " + namespace_);
    }
    CheckLabelsAndAnnotations(object, object.Find("metadata"), "metadata");

    if (kind == "Deployment" || kind == "StatefulSet") CheckWorkload(object);
    if (kind == "Service") CheckService(object);
    if (kind == "ResourceQuota") {
      if (const Value* hard = object.FindPath("spec.hard"); hard != nullptr && hard->IsMap()) {
        for (const auto& [key, value] : hard->AsMap()) CheckQuantity(object, &value, "hard." + key);
      }
    }
    if (kind == "NetworkPolicy") {
      CheckSelector(object, object.FindPath("spec.podSelector.matchLabels"), "podSelector");
      for (const char* direction : {"spec.ingress", "spec.egress"}) {
        for (const auto& rule : ListAt(object, direction)) {
          for (const auto& peer : ListAt(rule, rule.Find("from") ? "from" : "to")) {
            CheckSelector(object, peer.FindPath("namespaceSelector.matchLabels"), "peer");
            CheckSelector(object, peer.FindPath("podSelector.matchLabels"), "peer");
          }
          for (const auto& port : ListAt(rule, "ports")) {
            const Value* number = port.Find("port");
            if (number == nullptr || !number->IsInt() || number->AsInt() < 1 ||
                number->AsInt() > 65535) {
              Problem(object, "network policy port " + Text(number));
            }
          }
        }
      }
    }
  }

  void CheckWorkload(const Value& object) {
    const Value* template_labels = object.FindPath("spec.template.metadata.labels");
    const Value* selector = object.FindPath("spec.selector.matchLabels");
    CheckSelector(object, selector, "spec.selector");
    if (template_labels == nullptr || selector == nullptr || selector->AsMap().empty() ||
        !Contains(*template_labels, *selector)) {
      Problem(object, "selector does not match the pod template's labels");
    }
    CheckLabelsAndAnnotations(object, object.FindPath("spec.template.metadata"), "pod template");
    std::set<std::string> volumes;
    for (const auto& volume : ListAt(object, "spec.template.spec.volumes")) {
      volumes.insert(Text(volume.Find("name")));
    }
    for (const auto& claim : ListAt(object, "spec.volumeClaimTemplates")) {
      volumes.insert(Text(claim.FindPath("metadata.name")));
      CheckLabelsAndAnnotations(object, claim.Find("metadata"), "volumeClaimTemplate");
      CheckQuantity(object, claim.FindPath("spec.resources.requests.storage"), "claim storage");
    }
    std::set<std::string> container_names;
    for (const auto& container : ListAt(object, "spec.template.spec.containers")) {
      const std::string container_name = Text(container.Find("name"));
      const std::string where = "container " + container_name;
      if (!IsDns1123Label(container_name) || !container_names.insert(container_name).second) {
        Problem(object, where + ": invalid or duplicate name");
      }
      std::set<std::string> port_names;
      for (const auto& port : ListAt(container, "ports")) {
        const std::string port_name = Text(port.Find("name"));
        if (!IsPortName(port_name) || !port_names.insert(port_name).second) {
          Problem(object, where + ": invalid or duplicate port name " + port_name);
        }
        const Value* number = port.Find("containerPort");
        if (number == nullptr || !number->IsInt() || number->AsInt() < 1 ||
            number->AsInt() > 65535) {
          Problem(object, where + ": invalid containerPort");
        }
      }
      for (const char* probe_kind : {"readinessProbe", "livenessProbe"}) {
        const Value* probe = container.Find(probe_kind);
        if (probe == nullptr) {
          Problem(object, where + ": no " + probe_kind);
          continue;
        }
        for (const char* handler : {"httpGet.port", "tcpSocket.port"}) {
          const Value* port = probe->FindPath(handler);
          if (port != nullptr && port->IsString() && !port_names.contains(port->AsString())) {
            Problem(object,
                    where + ": " + probe_kind + " names no container port " + port->AsString());
          }
        }
      }
      CheckResources(object, container, where);
      for (const auto& mount : ListAt(container, "volumeMounts")) {
        if (!volumes.contains(Text(mount.Find("name")))) {
          Problem(object, where + ": mounts unknown volume " + Text(mount.Find("name")));
        }
      }
    }
  }

  void CheckResources(const Value& object, const Value& container, const std::string& where) {
    const Value* requests = container.FindPath("resources.requests");
    const Value* limits = container.FindPath("resources.limits");
    for (const char* resource : {"cpu", "memory"}) {
      // A ResourceQuota on requests/limits makes both mandatory for every container.
      const Value* request = requests != nullptr ? requests->Find(resource) : nullptr;
      const Value* limit = limits != nullptr ? limits->Find(resource) : nullptr;
      CheckQuantity(object, request, where + " requests." + resource);
      CheckQuantity(object, limit, where + " limits." + resource);
      if (request != nullptr && limit != nullptr && IsQuantity(Text(request)) &&
          IsQuantity(Text(limit)) && QuantityValue(Text(request)) > QuantityValue(Text(limit))) {
        Problem(object, where + " requests." + resource + " exceeds its limit");
      }
    }
  }

  void CheckService(const Value& object) {
    const Value* selector = object.FindPath("spec.selector");
    CheckSelector(object, selector, "spec.selector");
    std::set<std::string> names;
    for (const auto& port : ListAt(object, "spec.ports")) {
      const std::string port_name = Text(port.Find("name"));
      if (!IsPortName(port_name) || !names.insert(port_name).second) {
        Problem(object, "invalid or duplicate port name " + port_name);
      }
    }
  }

  // The pod templates a label selector selects.
  std::vector<const Value*> SelectedPods(const Value& selector) const {
    std::vector<const Value*> pods;
    for (const auto& candidate : objects_) {
      const std::string kind = Text(candidate.Find("kind"));
      if (kind != "Deployment" && kind != "StatefulSet") continue;
      const Value* labels = candidate.FindPath("spec.template.metadata.labels");
      if (labels != nullptr && Contains(*labels, selector)) {
        pods.push_back(candidate.FindPath("spec.template.spec"));
      }
    }
    return pods;
  }

  bool PodsHavePort(const std::vector<const Value*>& pods, const Value& target) const {
    for (const Value* pod : pods) {
      for (const auto& container : ListAt(*pod, "containers")) {
        for (const auto& port : ListAt(container, "ports")) {
          if (target.IsString() ? Text(port.Find("name")) == target.AsString()
                                : *port.Find("containerPort") == target) {
            return true;
          }
        }
      }
    }
    return false;
  }

  const Value* FindObject(const std::string& kind, const std::string& name) const {
    for (const auto& candidate : objects_) {
      if (Text(candidate.Find("kind")) == kind &&
          Text(candidate.FindPath("metadata.name")) == name) {
        return &candidate;
      }
    }
    return nullptr;
  }

  void CheckSecretKey(const Value& object, const Value* reference, const std::string& where) {
    const Value* secret = FindObject("Secret", Text(reference->Find("name")));
    if (secret == nullptr || secret->FindPath("data") == nullptr ||
        secret->FindPath("data")->Find(Text(reference->Find("key"))) == nullptr) {
      Problem(object, where + " names no Secret key " + Text(reference->Find("name")) + "/" +
                          Text(reference->Find("key")));
    }
  }

  void CheckReferences(const Value& object) {
    const std::string kind = Text(object.Find("kind"));
    if (kind == "Service") {
      const Value* selector = object.FindPath("spec.selector");
      const auto pods = selector != nullptr ? SelectedPods(*selector) : std::vector<const Value*>{};
      if (pods.empty()) Problem(object, "selector matches no pod template");
      for (const auto& port : ListAt(object, "spec.ports")) {
        const Value* target = port.Find("targetPort");
        if (target == nullptr) target = port.Find("port");
        if (target == nullptr || !PodsHavePort(pods, *target)) {
          Problem(object, "targetPort " + Text(target) + " names no container port");
        }
      }
    }
    if (kind == "StatefulSet") {
      const Value* service = FindObject("Service", Text(object.FindPath("spec.serviceName")));
      if (service == nullptr || Text(service->FindPath("spec.clusterIP")) != "None" ||
          !Contains(*object.FindPath("spec.template.metadata.labels"),
                    *service->FindPath("spec.selector"))) {
        Problem(object, "serviceName names no headless Service selecting its pods");
      }
    }
    if (kind == "Deployment" || kind == "StatefulSet") {
      for (const auto& volume : ListAt(object, "spec.template.spec.volumes")) {
        if (const Value* config_map = volume.FindPath("configMap.name")) {
          if (FindObject("ConfigMap", Text(config_map)) == nullptr) {
            Problem(object, "volume names no ConfigMap " + Text(config_map));
          }
        }
      }
      for (const auto& container : ListAt(object, "spec.template.spec.containers")) {
        for (const auto& env : ListAt(container, "env")) {
          if (const Value* reference = env.FindPath("valueFrom.secretKeyRef")) {
            CheckSecretKey(object, reference, "env " + Text(env.Find("name")));
          }
        }
        for (const auto& mount : ListAt(container, "volumeMounts")) {
          const Value* sub_path = mount.Find("subPath");
          if (sub_path == nullptr) continue;
          for (const auto& volume : ListAt(object, "spec.template.spec.volumes")) {
            if (Text(volume.Find("name")) != Text(mount.Find("name"))) continue;
            const Value* config_map =
                FindObject("ConfigMap", Text(volume.FindPath("configMap.name")));
            if (config_map == nullptr ||
                config_map->FindPath("data")->Find(Text(sub_path)) == nullptr) {
              Problem(object, "subPath " + Text(sub_path) + " is no key of the ConfigMap");
            }
          }
        }
      }
    }
    if (kind == "Ingress") CheckIngress(object);
    if (kind == "ServiceMonitor") CheckServiceMonitor(object);
  }

  bool ServiceHasPort(const Value& service, const Value* port_number, const Value* port_name) {
    for (const auto& port : ListAt(service, "spec.ports")) {
      if (port_number != nullptr && port.Find("port") != nullptr &&
          *port.Find("port") == *port_number) {
        return true;
      }
      if (port_name != nullptr && Text(port.Find("name")) == Text(port_name)) return true;
    }
    return false;
  }

  void CheckIngress(const Value& object) {
    std::set<std::string> hosts;
    for (const auto& rule : ListAt(object, "spec.rules")) {
      const std::string host = Text(rule.Find("host"));
      if (!IsDns1123Subdomain(host)) Problem(object, "invalid host " + host);
      hosts.insert(host);
      for (const auto& path : ListAt(rule, "http.paths")) {
        const std::string service_name = Text(path.FindPath("backend.service.name"));
        const Value* service = FindObject("Service", service_name);
        if (service == nullptr ||
            !ServiceHasPort(*service, path.FindPath("backend.service.port.number"),
                            path.FindPath("backend.service.port.name"))) {
          Problem(object, "backend " + service_name + " names no Service port");
        }
      }
    }
    for (const auto& tls : ListAt(object, "spec.tls")) {
      for (const auto& host : ListAt(tls, "hosts")) {
        if (!hosts.contains(Text(&host)))
          Problem(object, "TLS host without a rule: " + Text(&host));
      }
      if (!IsDns1123Subdomain(Text(tls.Find("secretName"))))
        Problem(object, "invalid TLS secretName");
    }
  }

  void CheckServiceMonitor(const Value& object) {
    const Value* selector = object.FindPath("spec.selector.matchLabels");
    CheckSelector(object, selector, "spec.selector");
    const Value* selected = nullptr;
    for (const auto& candidate : objects_) {
      if (Text(candidate.Find("kind")) == "Service" && selector != nullptr &&
          Contains(*candidate.FindPath("metadata.labels"), *selector)) {
        selected = &candidate;
      }
    }
    if (selected == nullptr) {
      Problem(object, "selector matches no Service");
      return;
    }
    bool in_namespace = false;
    for (const auto& name : ListAt(object, "spec.namespaceSelector.matchNames")) {
      in_namespace = in_namespace || Text(&name) == namespace_;
    }
    if (!in_namespace) Problem(object, "namespaceSelector misses " + namespace_);
    for (const auto& endpoint : ListAt(object, "spec.endpoints")) {
      if (!ServiceHasPort(*selected, nullptr, endpoint.Find("port"))) {
        Problem(object, "endpoint port " + Text(endpoint.Find("port")) + " is no Service port");
      }
      for (const char* credential : {"basicAuth.username", "basicAuth.password"}) {
        if (const Value* reference = endpoint.FindPath(credential)) {
          CheckSecretKey(object, reference, credential);
        }
      }
    }
  }

  // The quota must admit everything rendered (at one replica each, no rolling-update surge).
  void CheckQuota() {
    for (const auto& quota : objects_) {
      if (Text(quota.Find("kind")) != "ResourceQuota") continue;
      std::map<std::string, double> used;
      double services = 0;
      double claims = 0;
      for (const auto& object : objects_) {
        const std::string kind = Text(object.Find("kind"));
        if (kind == "Service") ++services;
        if (kind != "Deployment" && kind != "StatefulSet") continue;
        const double replicas = static_cast<double>(object.FindPath("spec.replicas")->AsInt());
        claims +=
            replicas * static_cast<double>(ListAt(object, "spec.volumeClaimTemplates").size());
        for (const auto& container : ListAt(object, "spec.template.spec.containers")) {
          for (const char* section : {"requests", "limits"}) {
            for (const char* resource : {"cpu", "memory"}) {
              const Value* value =
                  container.FindPath(std::string("resources.") + section + "." + resource);
              if (value != nullptr && IsQuantity(Text(value))) {
                used[std::string(section) + "." + resource] +=
                    replicas * QuantityValue(Text(value));
              }
            }
          }
        }
      }
      used["services"] = services;
      used["persistentvolumeclaims"] = claims;
      for (const auto& [key, amount] : used) {
        const Value* hard = quota.FindPath("spec.hard")->Find(key);
        if (hard != nullptr && IsQuantity(Text(hard)) && amount > QuantityValue(Text(hard))) {
          Problem(quota, key + " of the rendered workloads exceeds the quota");
        }
      }
    }
  }

  const std::vector<Value>& objects_;
  std::string namespace_;
  std::vector<std::string> problems_;
};

}  // namespace

std::vector<std::string> SemanticProblems(const std::vector<Value>& objects,
                                          const std::string& customer_id) {
  return Checker(objects, customer_id).Run();
}

}  // namespace billing::provisioner::testing
