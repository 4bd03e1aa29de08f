#include "pod_security.h"

#include <algorithm>
#include <set>

namespace billing::provisioner::testing {

namespace {

const Value* At(const Value* value, std::string_view key) {
  return value != nullptr ? value->Find(key) : nullptr;
}

bool IsTrue(const Value* value) { return value != nullptr && value->IsBool() && value->AsBool(); }
bool IsFalse(const Value* value) { return value != nullptr && value->IsBool() && !value->AsBool(); }
std::string Text(const Value* value) {
  return value != nullptr && value->IsString() ? value->AsString() : std::string();
}
const Value::List& Items(const Value* value) {
  static const Value::List kNone;
  return value != nullptr && value->IsList() ? value->AsList() : kNone;
}
bool IsZero(const Value* value) {
  return value != nullptr &&
         ((value->IsInt() && value->AsInt() == 0) || (value->IsFloat() && value->AsFloat() == 0.0));
}

class Checker {
 public:
  explicit Checker(const PodSpecOf& pod) : pod_(pod), spec_(pod.spec) {}

  std::vector<std::string> Run() {
    const Value* pod_context = At(spec_, "securityContext");
    // Baseline: host namespaces.
    for (const char* field : {"hostNetwork", "hostPID", "hostIPC"}) {
      if (IsTrue(At(spec_, field))) Report(field, "host namespaces are forbidden");
    }
    // Baseline: HostProcess, SELinux, sysctls, AppArmor; restricted: non-root, seccomp.
    CheckCommon(pod_context, "securityContext");
    for (const auto& sysctl : Items(At(pod_context, "sysctls"))) {
      static const std::set<std::string> kSafe = {"kernel.shm_rmid_forced",
                                                  "net.ipv4.ip_local_port_range",
                                                  "net.ipv4.ip_unprivileged_port_start",
                                                  "net.ipv4.tcp_syncookies",
                                                  "net.ipv4.ping_group_range",
                                                  "net.ipv4.ip_local_reserved_ports",
                                                  "net.ipv4.tcp_keepalive_time",
                                                  "net.ipv4.tcp_fin_timeout",
                                                  "net.ipv4.tcp_keepalive_intvl",
                                                  "net.ipv4.tcp_keepalive_probes"};
      const std::string name = Text(At(&sysctl, "name"));
      if (!kSafe.contains(name)) Report("securityContext.sysctls", name + " is not a safe sysctl");
    }
    const bool pod_non_root = IsTrue(At(pod_context, "runAsNonRoot"));
    const std::string pod_seccomp = Text(At(At(pod_context, "seccompProfile"), "type"));
    // Restricted: volume types.
    for (const auto& volume : Items(At(spec_, "volumes"))) {
      static const std::set<std::string> kAllowed = {
          "configMap", "csi",       "downwardAPI",           "emptyDir",
          "ephemeral", "projected", "persistentVolumeClaim", "secret"};
      for (const auto& [key, member] : volume.AsMap()) {
        if (key != "name" && !kAllowed.contains(key)) {
          Report("volumes." + Text(At(&volume, "name")), key + " volumes are not allowed");
        }
      }
    }
    int containers = 0;
    for (const char* list : {"initContainers", "containers", "ephemeralContainers"}) {
      for (const auto& container : Items(At(spec_, list))) {
        ++containers;
        CheckContainer(container, std::string(list) + "." + Text(At(&container, "name")),
                       pod_non_root, pod_seccomp);
      }
    }
    if (containers == 0) Report("containers", "no container to check");
    return problems_;
  }

 private:
  void Report(const std::string& field, const std::string& why) {
    problems_.push_back(pod_.owner + ": " + field + ": " + why);
  }

  // Rules that apply to the pod's and each container's securityContext alike.
  void CheckCommon(const Value* context, const std::string& where) {
    if (IsTrue(At(At(context, "windowsOptions"), "hostProcess"))) {
      Report(where + ".windowsOptions.hostProcess", "HostProcess is forbidden");
    }
    if (const Value* selinux = At(context, "seLinuxOptions")) {
      static const std::set<std::string> kTypes = {"", "container_t", "container_init_t",
                                                   "container_kvm_t", "container_engine_t"};
      if (!kTypes.contains(Text(At(selinux, "type")))) {
        Report(where + ".seLinuxOptions.type", "not an allowed SELinux type");
      }
      if (At(selinux, "user") != nullptr || At(selinux, "role") != nullptr) {
        Report(where + ".seLinuxOptions", "user and role must be unset");
      }
    }
    const std::string apparmor = Text(At(At(context, "appArmorProfile"), "type"));
    if (!apparmor.empty() && apparmor != "RuntimeDefault" && apparmor != "Localhost") {
      Report(where + ".appArmorProfile.type", apparmor + " is not RuntimeDefault or Localhost");
    }
    if (IsZero(At(context, "runAsUser"))) Report(where + ".runAsUser", "must not be 0 (root)");
    const std::string seccomp = Text(At(At(context, "seccompProfile"), "type"));
    if (!seccomp.empty() && seccomp != "RuntimeDefault" && seccomp != "Localhost") {
      Report(where + ".seccompProfile.type", seccomp + " is not RuntimeDefault or Localhost");
    }
  }

  void CheckContainer(const Value& container, const std::string& where, bool pod_non_root,
                      const std::string& pod_seccomp) {
    const Value* context = At(&container, "securityContext");
    const std::string in = where + ".securityContext";
    CheckCommon(context, in);
    if (IsTrue(At(context, "privileged"))) Report(in + ".privileged", "must not be true");
    const std::string proc_mount = Text(At(context, "procMount"));
    if (!proc_mount.empty() && proc_mount != "Default") {
      Report(in + ".procMount", "must be Default");
    }
    for (const auto& port : Items(At(&container, "ports"))) {
      const Value* host_port = At(&port, "hostPort");
      if (host_port != nullptr && !IsZero(host_port)) {
        Report(where + ".ports.hostPort", "host ports are forbidden");
      }
    }
    // Restricted.
    if (!IsFalse(At(context, "allowPrivilegeEscalation"))) {
      Report(in + ".allowPrivilegeEscalation", "must be false");
    }
    const Value* non_root = At(context, "runAsNonRoot");
    if (IsFalse(non_root) || (!pod_non_root && !IsTrue(non_root))) {
      Report(in + ".runAsNonRoot", "must be true (in the pod's or the container's context)");
    }
    const std::string seccomp = Text(At(At(context, "seccompProfile"), "type"));
    if (seccomp.empty() && pod_seccomp.empty()) {
      Report(in + ".seccompProfile", "must be RuntimeDefault or Localhost (pod or container)");
    }
    const Value* capabilities = At(context, "capabilities");
    const auto& drop = Items(At(capabilities, "drop"));
    if (std::none_of(drop.begin(), drop.end(),
                     [](const Value& name) { return Text(&name) == "ALL"; })) {
      Report(in + ".capabilities.drop", "must include ALL");
    }
    for (const auto& added : Items(At(capabilities, "add"))) {
      if (Text(&added) != "NET_BIND_SERVICE") {
        Report(in + ".capabilities.add",
               Text(&added) + " may not be added (NET_BIND_SERVICE only)");
      }
    }
  }

  const PodSpecOf& pod_;
  const Value* spec_;
  std::vector<std::string> problems_;
};

}  // namespace

std::vector<PodSpecOf> PodSpecs(const std::vector<Value>& objects) {
  std::vector<PodSpecOf> pods;
  for (const auto& object : objects) {
    const std::string kind = Text(object.Find("kind"));
    const std::string owner = kind + "/" + Text(object.FindPath("metadata.name"));
    const Value* spec = nullptr;
    if (kind == "Pod") {
      spec = object.Find("spec");
    } else if (kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" ||
               kind == "ReplicaSet" || kind == "Job") {
      spec = object.FindPath("spec.template.spec");
    } else if (kind == "CronJob") {
      spec = object.FindPath("spec.jobTemplate.spec.template.spec");
    }
    if (spec != nullptr) pods.push_back({owner, spec});
  }
  return pods;
}

std::vector<std::string> RestrictedViolations(const PodSpecOf& pod) { return Checker(pod).Run(); }

}  // namespace billing::provisioner::testing
