// provisioner/kube: the API path of each kind the renderer makes.
#include "resource_path.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <stdexcept>
#include <string_view>

namespace billing::provisioner {
namespace {

struct KindInfo {
  std::string_view api_version;
  std::string_view kind;
  std::string_view plural;
  bool namespaced;
};

// Every kind the renderer produces, and nothing else: the provisioner's RBAC grants exactly these.
constexpr std::array<KindInfo, 11> kKinds = {{
    {"v1", "Namespace", "namespaces", false},
    {"v1", "ResourceQuota", "resourcequotas", true},
    {"v1", "Secret", "secrets", true},
    {"v1", "ConfigMap", "configmaps", true},
    {"v1", "Service", "services", true},
    {"v1", "ServiceAccount", "serviceaccounts", true},
    {"networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", true},
    {"networking.k8s.io/v1", "Ingress", "ingresses", true},
    {"apps/v1", "StatefulSet", "statefulsets", true},
    {"apps/v1", "Deployment", "deployments", true},
    {"monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors", true},
}};

const KindInfo& FindKind(const std::string& api_version, const std::string& kind) {
  for (const auto& info : kKinds) {
    if (info.api_version == api_version && info.kind == kind) return info;
  }
  throw std::invalid_argument("unknown kind " + api_version + "/" + kind +
                              " (the Kubernetes client knows only the kinds the renderer makes)");
}

// Names go into the URL unescaped, so anything that could change the path is refused here. The
// API server's own naming rules (lower case, length) are left to it: its 422 says it better.
void CheckPathSegment(const std::string& what, const std::string& value) {
  const bool safe = std::all_of(value.begin(), value.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_';
  });
  if (value.empty() || value == "." || value == ".." || !safe) {
    throw std::invalid_argument(what + " \"" + value + "\" cannot be part of an API path");
  }
}

}  // namespace

std::string ResourcePath(const std::string& api_version, const std::string& kind,
                         const std::string& namespace_name, const std::string& name) {
  const KindInfo& info = FindKind(api_version, kind);
  CheckPathSegment(kind + " name", name);
  // The core group lives under /api, every named group under /apis.
  std::string path =
      (api_version.find('/') == std::string::npos ? "/api/" : "/apis/") + api_version;
  if (info.namespaced) {
    CheckPathSegment(kind + " namespace", namespace_name);
    path += "/namespaces/" + namespace_name;
  } else if (!namespace_name.empty()) {
    throw std::invalid_argument(kind + " is cluster-scoped but namespace \"" + namespace_name +
                                "\" was given");
  }
  return path + "/" + std::string(info.plural) + "/" + name;
}

}  // namespace billing::provisioner
