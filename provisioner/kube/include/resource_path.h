// provisioner/kube: the API path of every kind the renderer makes (and of no other kind, which
// is what the provisioner's RBAC grants). Pure.
#pragma once

#include <string>

namespace billing::provisioner {

/// Resource path of a kind the provisioner handles ("/apis/apps/v1/namespaces/ns/deployments/x").
/// Throws std::invalid_argument for a kind it does not know.
std::string ResourcePath(const std::string& api_version, const std::string& kind,
                         const std::string& namespace_name, const std::string& name);

}  // namespace billing::provisioner
