#include "billing/provisioner/render.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>

#include "billing/common/base64.h"
#include "billing/provisioner/values.h"

// Each builder mirrors one template of manifests/charts/customer-instance/templates/ (named in
// its comment); the parity test holds the two together, so change them in the same commit.

namespace billing::provisioner {

namespace {

Value M(Value::Map entries) { return Value(std::move(entries)); }
Value L(Value::List items) { return Value(std::move(items)); }

// Naming and labels shared by every builder (_helpers.tpl).
class Stack {
 public:
  Stack(const CustomerSpec& spec, const ChartInfo& chart, const RenderOptions& options)
      : spec_(spec), chart_(chart), options_(options), fullname_("customer-" + spec.id) {}

  const CustomerSpec& spec() const { return spec_; }
  const std::string& fullname() const { return fullname_; }
  const std::string& ns() const { return fullname_; }
  std::string Name(const std::string& suffix) const { return fullname_ + "-" + suffix; }
  std::string SecretName() const { return Name("secrets"); }
  std::string Host() const { return spec_.id + "." + spec_.domain_base; }

  Value Labels(const std::string& component) const {
    Value labels =
        M({{"app.kubernetes.io/name", chart_.name}, {"app.kubernetes.io/instance", fullname_}});
    if (!component.empty()) labels.Set("app.kubernetes.io/component", component);
    labels.Set("app.kubernetes.io/part-of", "iotistic");
    labels.Set("app.kubernetes.io/version", chart_.app_version);
    labels.Set("app.kubernetes.io/managed-by", options_.managed_by);
    labels.Set("helm.sh/chart", chart_.name + "-" + chart_.version);
    labels.Set("billing/customer", spec_.id);
    return labels;
  }

  Value SelectorLabels(const std::string& component) const {
    return M({{"app.kubernetes.io/name", chart_.name},
              {"app.kubernetes.io/instance", fullname_},
              {"app.kubernetes.io/component", component}});
  }

  Value Metadata(const std::string& name, const std::string& component) const {
    return M({{"name", name}, {"namespace", ns()}, {"labels", Labels(component)}});
  }

  KubeObject Object(std::string api_version, std::string kind, Value metadata,
                    Value::Map body) const {
    KubeObject object;
    object.api_version = std::move(api_version);
    object.kind = std::move(kind);
    object.name = metadata.Find("name")->AsString();
    if (const Value* namespace_name = metadata.Find("namespace")) {
      object.namespace_name = namespace_name->AsString();
    }
    Value manifest = M({{"apiVersion", object.api_version},
                        {"kind", object.kind},
                        {"metadata", std::move(metadata)}});
    for (auto& [key, value] : body) manifest.Set(key, std::move(value));
    object.manifest = std::move(manifest);
    return object;
  }

  Value SecretEnv(const std::string& name, const std::string& key) const {
    return M({{"name", name},
              {"valueFrom", M({{"secretKeyRef", M({{"name", SecretName()}, {"key", key}})}})}});
  }

  /// repository:tag, the tag defaulting to the chart's appVersion (_helpers.tpl's image).
  std::string Image(const ImageSpec& image) const {
    return image.repository + ":" + (image.tag.empty() ? chart_.app_version : image.tag);
  }

  /// The billing exporter's MQTT client id, reserved to its broker user (client-id guard).
  std::string ExporterClientId() const { return "billing-exporter-" + spec_.id; }

  std::string MqttUrl() const {
    return "tcp://" + Name("mosquitto") + ":" + std::to_string(spec_.mosquitto.workload.port);
  }

 private:
  const CustomerSpec& spec_;
  const ChartInfo& chart_;
  const RenderOptions& options_;
  std::string fullname_;
};

Value Env(const std::string& name, const std::string& value) {
  return M({{"name", name}, {"value", value}});
}

Value ContainerPort(const std::string& name, std::int64_t port) {
  return M({{"name", name}, {"containerPort", port}, {"protocol", "TCP"}});
}

Value ServicePort(const std::string& name, std::int64_t port) {
  return M({{"name", name}, {"port", port}, {"targetPort", name}, {"protocol", "TCP"}});
}

Value Probe(Value::Map handler, int initial_delay, int period) {
  Value probe = M(std::move(handler));
  probe.Set("initialDelaySeconds", initial_delay);
  probe.Set("periodSeconds", period);
  return probe;
}

Value TcpProbe(const std::string& port, int initial_delay, int period) {
  return Probe({{"tcpSocket", M({{"port", port}})}}, initial_delay, period);
}

Value HttpProbe(const std::string& path, const std::string& port, int initial_delay, int period) {
  return Probe({{"httpGet", M({{"path", path}, {"port", port}})}}, initial_delay, period);
}

// _helpers.tpl's podSecurityContext: the pod-level half of the restricted Pod Security profile,
// as the image's own non-root user; fsGroup gives the volumes to its group.
Value PodSecurityContext(const WorkloadSpec& workload) {
  return M({{"runAsNonRoot", true},
            {"runAsUser", workload.run_as_user},
            {"runAsGroup", workload.run_as_group},
            {"fsGroup", workload.run_as_group},
            {"fsGroupChangePolicy", "OnRootMismatch"},
            {"seccompProfile", M({{"type", "RuntimeDefault"}})}});
}

// _helpers.tpl's containerSecurityContext: no privilege escalation, every capability dropped but
// NET_BIND_SERVICE for a container listening below 1024.
Value ContainerSecurityContext(bool read_only_root, std::initializer_list<std::int64_t> ports) {
  Value capabilities = M({{"drop", L({"ALL"})}});
  if (std::any_of(ports.begin(), ports.end(), [](std::int64_t port) { return port < 1024; })) {
    capabilities.Set("add", L({"NET_BIND_SERVICE"}));
  }
  return M({{"allowPrivilegeEscalation", false},
            {"readOnlyRootFilesystem", read_only_root},
            {"capabilities", std::move(capabilities)}});
}

Value Mount(const std::string& name, const std::string& path) {
  return M({{"name", name}, {"mountPath", path}});
}

Value EmptyDirVolume(const std::string& name, const std::string& size_limit) {
  return M({{"name", name}, {"emptyDir", M({{"sizeLimit", size_limit}})}});
}

// A Deployment or StatefulSet pod template: labels, no service-account token (none of these
// workloads talks to the Kubernetes API), the pod's security context if any, the containers and
// volumes.
Value PodTemplate(const Stack& stack, const std::string& component, Value::List containers,
                  Value::List volumes, Value security_context = Value()) {
  Value pod_spec = M({{"automountServiceAccountToken", false}});
  if (!security_context.IsNull()) pod_spec.Set("securityContext", std::move(security_context));
  pod_spec.Set("containers", L(std::move(containers)));
  if (!volumes.empty()) pod_spec.Set("volumes", L(std::move(volumes)));
  return M({{"metadata", M({{"labels", stack.Labels(component)}})}, {"spec", std::move(pod_spec)}});
}

KubeObject ClusterIpService(const Stack& stack, const std::string& component, Value::List ports,
                            Value annotations = Value()) {
  Value metadata = stack.Metadata(stack.Name(component), component);
  if (!annotations.IsNull()) metadata.Set("annotations", std::move(annotations));
  return stack.Object("v1", "Service", std::move(metadata),
                      {{"spec", M({{"type", "ClusterIP"},
                                   {"selector", stack.SelectorLabels(component)},
                                   {"ports", L(std::move(ports))}})}});
}

KubeObject Deployment(const Stack& stack, const std::string& component, Value::List containers,
                      Value::List volumes = {}, Value security_context = Value()) {
  return stack.Object(
      "apps/v1", "Deployment", stack.Metadata(stack.Name(component), component),
      {{"spec", M({{"replicas", 1},
                   {"selector", M({{"matchLabels", stack.SelectorLabels(component)}})},
                   {"template", PodTemplate(stack, component, std::move(containers),
                                            std::move(volumes), std::move(security_context))}})}});
}

// namespace.yaml
KubeObject NamespaceObject(const Stack& stack) {
  // Pod Security Admission: every pod must meet the restricted profile (audit and warn too).
  Value labels = stack.Labels("");
  for (const char* mode : {"enforce", "audit", "warn"}) {
    labels.Set(std::string("pod-security.kubernetes.io/") + mode, "restricted");
    labels.Set(std::string("pod-security.kubernetes.io/") + mode + "-version", "latest");
  }
  Value metadata =
      M({{"name", stack.ns()},
         {"labels", std::move(labels)},
         {"annotations", M({{"iotistic.io/customer-email", stack.spec().email},
                            {"iotistic.io/company-name", stack.spec().company_name}})}});
  KubeObject object = stack.Object("v1", "Namespace", std::move(metadata), {});
  return object;
}

// resourcequota.yaml
KubeObject ResourceQuotaObject(const Stack& stack) {
  const auto& quota = stack.spec().resource_quota;
  return stack.Object("v1", "ResourceQuota", stack.Metadata(stack.Name("quota"), "quota"),
                      {{"spec", M({{"hard", M({{"requests.cpu", quota.cpu},
                                               {"limits.cpu", quota.cpu},
                                               {"requests.memory", quota.memory},
                                               {"limits.memory", quota.memory},
                                               {"persistentvolumeclaims", quota.pvcs},
                                               {"services", quota.services}})}})}});
}

// networkpolicy.yaml: every pod isolated both ways (egress to DNS, the namespace and TCP 80/443
// outside link-local and the API server's ranges), then one ingress policy per component.
std::vector<KubeObject> NetworkPolicyObjects(const Stack& stack) {
  const CustomerSpec& spec = stack.spec();
  const auto& policy = spec.network_policy;
  auto from_namespace = [](const std::string& name) {
    return M(
        {{"namespaceSelector", M({{"matchLabels", M({{"kubernetes.io/metadata.name", name}})}})}});
  };
  auto from_component = [&](const std::string& component) {
    return M({{"podSelector", M({{"matchLabels", stack.SelectorLabels(component)}})}});
  };
  auto tcp = [](std::int64_t port) { return M({{"protocol", "TCP"}, {"port", port}}); };
  auto object = [&](const std::string& name, Value spec_body) {
    return stack.Object("networking.k8s.io/v1", "NetworkPolicy",
                        stack.Metadata(name, "network-policy"), {{"spec", std::move(spec_body)}});
  };
  // One component's policy: ingress isolated, allowed only `from` to `ports` (nothing if empty).
  auto ingress_policy = [&](const std::string& component, Value::List from, Value::List ports) {
    Value body = M({{"podSelector", M({{"matchLabels", stack.SelectorLabels(component)}})},
                    {"policyTypes", L({"Ingress"})}});
    if (!from.empty()) {
      body.Set("ingress", L({M({{"from", L(std::move(from))}, {"ports", L(std::move(ports))}})}));
    }
    return object(stack.Name(component), std::move(body));
  };

  Value::List denied = {"169.254.0.0/16"};
  for (const auto& cidr : policy.api_server_cidrs) denied.emplace_back(cidr);
  Value::List egress = {
      M({{"ports", L({M({{"protocol", "UDP"}, {"port", 53}}), tcp(53)})}}),
      M({{"to", L({M({{"podSelector", Value::EmptyMap()}})})}}),
      M({{"to",
          L({M({{"ipBlock", M({{"cidr", "0.0.0.0/0"}, {"except", L(std::move(denied))}})}})})},
         {"ports", L({tcp(80), tcp(443)})}}),
  };
  std::vector<KubeObject> objects;
  objects.push_back(
      object(stack.Name("network-policy"), M({{"podSelector", Value::EmptyMap()},
                                              {"policyTypes", L({"Ingress", "Egress"})},
                                              {"egress", L(std::move(egress))}})));

  objects.push_back(ingress_policy("postgres", {from_component("api"), from_component("exporter")},
                                   {tcp(spec.postgres.workload.port)}));

  Value::List broker_from = {M({{"podSelector", Value::EmptyMap()}})};
  if (!policy.device_ingress_namespace.empty()) {
    broker_from.push_back(from_namespace(policy.device_ingress_namespace));
  }
  objects.push_back(
      ingress_policy("mosquitto", std::move(broker_from),
                     {tcp(spec.mosquitto.workload.port), tcp(spec.mosquitto.websocket_port)}));

  // The ingress controller reaches the API and the dashboard also with ingress.enabled false (an
  // Ingress managed elsewhere; turning the chart's Ingress on changes no other object).
  objects.push_back(ingress_policy(
      "api", {from_component("dashboard"), from_namespace(policy.ingress_controller_namespace)},
      {tcp(spec.api.port)}));
  objects.push_back(ingress_policy("dashboard",
                                   {from_namespace(policy.ingress_controller_namespace)},
                                   {tcp(spec.dashboard.port)}));

  Value::List exporter_from;
  if (!policy.prometheus_namespace.empty()) {
    exporter_from.push_back(from_namespace(policy.prometheus_namespace));
  }
  if (spec.ingress.enabled && spec.ingress.expose_metrics) {
    exporter_from.push_back(from_namespace(policy.ingress_controller_namespace));
  }
  objects.push_back(
      ingress_policy("exporter", std::move(exporter_from), {tcp(spec.exporter.workload.port)}));
  return objects;
}

// _helpers.tpl's mosquittoAcl: the exporter reads the broker's totals and, in plugin mode, the
// plugin's snapshots, or in subscription mode every topic (its subscription to #); it publishes
// nothing. The devices read and write every topic but $SYS, which '#' never matches.
std::string MosquittoAcl(const CustomerSpec& spec) {
  const std::string exporter_reads =
      spec.mosquitto.plugin_metering ? "topic read $SYS/billing/#\n" : "topic read #\n";
  return "# The billing exporter: reads the broker's totals and its usage, publishes nothing.\n"
         "user " +
         spec.mosquitto.exporter_user.username + "\n" + exporter_reads +
         "topic read $SYS/broker/#\n\n"
         "# The tenant's devices and API: every topic but $SYS.\n"
         "user " +
         spec.mosquitto.device_user.username + "\ntopic readwrite #\n";
}

// secret.yaml
KubeObject SecretObject(const Stack& stack) {
  const CustomerSpec& spec = stack.spec();
  const std::string database_url = "postgresql://" + spec.postgres.username + ":" +
                                   spec.postgres.password + "@" + stack.Name("postgres") + ":" +
                                   std::to_string(spec.postgres.workload.port) + "/" +
                                   spec.postgres.database;
  Value data = M({{"CUSTOMER_COMPANY_NAME", common::Base64Encode(spec.company_name)},
                  {"CUSTOMER_EMAIL", common::Base64Encode(spec.email)},
                  {"CUSTOMER_ID", common::Base64Encode(spec.id)},
                  {"DATABASE_URL", common::Base64Encode(database_url)}});
  if (!spec.exporter.basic_auth_password.empty()) {
    data.Set("EXPORTER_BASIC_AUTH_PASSWORD",
             common::Base64Encode(spec.exporter.basic_auth_password));
    data.Set("EXPORTER_BASIC_AUTH_USERNAME",
             common::Base64Encode(spec.exporter.basic_auth_username));
  }
  data.Set("IOTISTIC_LICENSE_KEY", common::Base64Encode(spec.license_key));
  const auto& exporter_user = spec.mosquitto.exporter_user;
  const auto& device_user = spec.mosquitto.device_user;
  data.Set("MOSQUITTO_ACL", common::Base64Encode(MosquittoAcl(spec)));
  data.Set("MOSQUITTO_PASSWORDS",
           common::Base64Encode(exporter_user.username + ":" + exporter_user.password_hash + "\n" +
                                device_user.username + ":" + device_user.password_hash + "\n"));
  data.Set("MQTT_DEVICE_PASSWORD", common::Base64Encode(device_user.password));
  data.Set("MQTT_DEVICE_USERNAME", common::Base64Encode(device_user.username));
  data.Set("MQTT_EXPORTER_PASSWORD", common::Base64Encode(exporter_user.password));
  data.Set("MQTT_EXPORTER_USERNAME", common::Base64Encode(exporter_user.username));
  data.Set("POSTGRES_DB", common::Base64Encode(spec.postgres.database));
  data.Set("POSTGRES_PASSWORD", common::Base64Encode(spec.postgres.password));
  data.Set("POSTGRES_USER", common::Base64Encode(spec.postgres.username));
  return stack.Object("v1", "Secret", stack.Metadata(stack.SecretName(), "secrets"),
                      {{"type", "Opaque"}, {"data", std::move(data)}});
}

// configmap-mosquitto.yaml
KubeObject MosquittoConfigObject(const Stack& stack) {
  const auto& mosquitto = stack.spec().mosquitto;
  const std::string config =
      "listener " + std::to_string(mosquitto.workload.port) + "\nprotocol mqtt\nlistener " +
      std::to_string(mosquitto.websocket_port) +
      "\nprotocol websockets\nallow_anonymous false\npassword_file /mosquitto/auth/passwords\n"
      "acl_file /mosquitto/auth/acl\nplugin /usr/lib/iotistic/billing_client_id_guard.so\n"
      "plugin_opt_client_id " +
      stack.ExporterClientId() + "\nplugin_opt_username " + mosquitto.exporter_user.username +
      (mosquitto.plugin_metering
           ? "\nplugin /usr/lib/iotistic/billing_mosquitto_plugin.so\n"
             "plugin_opt_billing_snapshot_interval " +
                 std::to_string(mosquitto.snapshot_interval_seconds) +
                 "\nplugin_opt_billing_unmetered_client_ids " + stack.ExporterClientId()
           : std::string()) +
      "\nsys_interval " + std::to_string(mosquitto.sys_interval_seconds) +
      "\nmax_queued_messages " + std::to_string(mosquitto.max_queued_messages) +
      "\npersistence false\nlog_dest stdout\n";
  return stack.Object("v1", "ConfigMap",
                      stack.Metadata(stack.Name("mosquitto-config"), "mosquitto"),
                      {{"data", M({{"mosquitto.conf", config}})}});
}

// Go's %q for the ASCII-safe strings it is applied to here (validated ids and durations).
std::string GoQuoted(const std::string& text) { return "\"" + text + "\""; }

// configmap-exporter.yaml
KubeObject ExporterConfigObject(const Stack& stack) {
  const auto& exporter = stack.spec().exporter;
  const std::string config =
      "customer_id: " + GoQuoted(stack.spec().id) +
      "\nlisten: " + GoQuoted("0.0.0.0:" + std::to_string(exporter.workload.port)) +
      "\nsample_interval: " + GoQuoted(exporter.sample_interval) + "\n" +
      (stack.spec().mosquitto.plugin_metering ? "mqtt:\n  source: plugin\n" : "");
  return stack.Object("v1", "ConfigMap", stack.Metadata(stack.Name("exporter-config"), "exporter"),
                      {{"data", M({{"config.yaml", config}})}});
}

// postgres.yaml (Service)
KubeObject PostgresServiceObject(const Stack& stack) {
  return stack.Object(
      "v1", "Service", stack.Metadata(stack.Name("postgres"), "postgres"),
      {{"spec",
        M({{"clusterIP", "None"},
           {"selector", stack.SelectorLabels("postgres")},
           {"ports", L({ServicePort("postgres", stack.spec().postgres.workload.port)})}})}});
}

// postgres.yaml (StatefulSet)
KubeObject PostgresStatefulSetObject(const Stack& stack) {
  const auto& postgres = stack.spec().postgres;
  const Value pg_isready = M({{"command", L({"sh", "-c",
                                             "pg_isready -h 127.0.0.1 -p \"$PGPORT\" -U "
                                             "\"$POSTGRES_USER\" -d \"$POSTGRES_DB\""})}});
  Value readiness = Probe({{"exec", pg_isready}}, 5, 10);
  readiness.Set("timeoutSeconds", 5);
  Value liveness = Probe({{"exec", pg_isready}}, 30, 20);
  liveness.Set("timeoutSeconds", 5);
  liveness.Set("failureThreshold", 6);
  Value container = M({
      {"name", "postgres"},
      {"image", stack.Image(postgres.workload.image)},
      {"imagePullPolicy", postgres.workload.image.pull_policy},
      {"ports", L({ContainerPort("postgres", postgres.workload.port)})},
      {"env", L({stack.SecretEnv("POSTGRES_DB", "POSTGRES_DB"),
                 stack.SecretEnv("POSTGRES_USER", "POSTGRES_USER"),
                 stack.SecretEnv("POSTGRES_PASSWORD", "POSTGRES_PASSWORD"),
                 Env("PGPORT", std::to_string(postgres.workload.port)),
                 Env("PGDATA", "/var/lib/postgresql/data/pgdata")})},
      // Read-only root: PGDATA on the claim, the socket directory and the entrypoint's /tmp.
      {"volumeMounts", L({Mount("postgres-data", "/var/lib/postgresql/data"),
                          Mount("run", "/var/run/postgresql"), Mount("tmp", "/tmp")})},
      {"securityContext", ContainerSecurityContext(true, {postgres.workload.port})},
      {"resources", postgres.workload.resources},
      {"readinessProbe", std::move(readiness)},
      {"livenessProbe", std::move(liveness)},
  });
  Value claim_spec = M({{"accessModes", L({"ReadWriteOnce"})}});
  if (!postgres.storage_class.empty()) claim_spec.Set("storageClassName", postgres.storage_class);
  claim_spec.Set("resources", M({{"requests", M({{"storage", postgres.storage_size}})}}));
  Value claim =
      M({{"metadata", M({{"name", "postgres-data"}, {"labels", stack.SelectorLabels("postgres")}})},
         {"spec", std::move(claim_spec)}});
  return stack.Object(
      "apps/v1", "StatefulSet", stack.Metadata(stack.Name("postgres"), "postgres"),
      {{"spec",
        M({{"serviceName", stack.Name("postgres")},
           {"replicas", 1},
           {"selector", M({{"matchLabels", stack.SelectorLabels("postgres")}})},
           {"template", PodTemplate(stack, "postgres", {std::move(container)},
                                    {EmptyDirVolume("run", "16Mi"), EmptyDirVolume("tmp", "64Mi")},
                                    PodSecurityContext(postgres.workload))},
           {"volumeClaimTemplates", L({std::move(claim)})}})}});
}

Value ConfigVolume(const std::string& config_map) {
  return M({{"name", "config"}, {"configMap", M({{"name", config_map}})}});
}

// mosquitto.yaml (Deployment)
KubeObject MosquittoDeploymentObject(const Stack& stack) {
  const auto& mosquitto = stack.spec().mosquitto;
  Value container = M({
      {"name", "mosquitto"},
      {"image", stack.Image(mosquitto.workload.image)},
      {"imagePullPolicy", mosquitto.workload.image.pull_policy},
      {"ports", L({ContainerPort("mqtt", mosquitto.workload.port),
                   ContainerPort("websocket", mosquitto.websocket_port)})},
      {"volumeMounts",
       L({M({{"name", "config"},
             {"mountPath", "/mosquitto/config/mosquitto.conf"},
             {"subPath", "mosquitto.conf"},
             {"readOnly", true}}),
          M({{"name", "auth"}, {"mountPath", "/mosquitto/auth"}, {"readOnly", true}})})},
      // Read-only root: with persistence false and log_dest stdout the broker writes no file.
      {"securityContext",
       ContainerSecurityContext(true, {mosquitto.workload.port, mosquitto.websocket_port})},
      {"resources", mosquitto.workload.resources},
      {"readinessProbe", TcpProbe("mqtt", 2, 10)},
      {"livenessProbe", TcpProbe("mqtt", 15, 20)},
  });
  // The password file and ACL, from the tenant's Secret only; 0440 (the broker's group is the
  // pod's fsGroup): nothing else in the pod may read them.
  Value auth =
      M({{"name", "auth"},
         {"secret",
          M({{"secretName", stack.SecretName()},
             {"defaultMode", 0440},
             {"items", L({M({{"key", "MOSQUITTO_ACL"}, {"path", "acl"}}),
                          M({{"key", "MOSQUITTO_PASSWORDS"}, {"path", "passwords"}})})}})}});
  return Deployment(stack, "mosquitto", {std::move(container)},
                    {ConfigVolume(stack.Name("mosquitto-config")), std::move(auth)},
                    PodSecurityContext(mosquitto.workload));
}

// api.yaml (Deployment)
KubeObject ApiDeploymentObject(const Stack& stack) {
  const auto& api = stack.spec().api;
  Value container = M({
      {"name", "api"},
      {"image", stack.Image(api.image)},
      {"imagePullPolicy", api.image.pull_policy},
      {"ports", L({ContainerPort("http", api.port)})},
      {"env", L({Env("PORT", std::to_string(api.port)), Env("CUSTOMER_ID", stack.spec().id),
                 stack.SecretEnv("DATABASE_URL", "DATABASE_URL"),
                 stack.SecretEnv("IOTISTIC_LICENSE_KEY", "IOTISTIC_LICENSE_KEY"),
                 Env("MQTT_URL", stack.MqttUrl()),
                 stack.SecretEnv("MQTT_USERNAME", "MQTT_DEVICE_USERNAME"),
                 stack.SecretEnv("MQTT_PASSWORD", "MQTT_DEVICE_PASSWORD")})},
      {"volumeMounts", L({Mount("tmp", "/tmp")})},
      {"securityContext", ContainerSecurityContext(api.read_only_root_filesystem, {api.port})},
      {"resources", api.resources},
      {"readinessProbe", TcpProbe("http", 5, 10)},
      {"livenessProbe", TcpProbe("http", 30, 20)},
  });
  return Deployment(stack, "api", {std::move(container)}, {EmptyDirVolume("tmp", "64Mi")},
                    PodSecurityContext(api));
}

// dashboard.yaml (Deployment)
KubeObject DashboardDeploymentObject(const Stack& stack) {
  const auto& dashboard = stack.spec().dashboard;
  Value container = M({
      {"name", "dashboard"},
      {"image", stack.Image(dashboard.image)},
      {"imagePullPolicy", dashboard.image.pull_policy},
      {"ports", L({ContainerPort("http", dashboard.port)})},
      {"env", L({Env("API_URL", "http://" + stack.Name("api") + ":" +
                                    std::to_string(stack.spec().api.port))})},
      {"volumeMounts", L({Mount("tmp", "/tmp")})},
      {"securityContext",
       ContainerSecurityContext(dashboard.read_only_root_filesystem, {dashboard.port})},
      {"resources", dashboard.resources},
      {"readinessProbe", HttpProbe("/", "http", 2, 10)},
      {"livenessProbe", HttpProbe("/", "http", 15, 20)},
  });
  return Deployment(stack, "dashboard", {std::move(container)}, {EmptyDirVolume("tmp", "64Mi")},
                    PodSecurityContext(dashboard));
}

// exporter.yaml (Deployment)
KubeObject ExporterDeploymentObject(const Stack& stack) {
  const auto& exporter = stack.spec().exporter;
  Value::List env = {Env("CUSTOMER_ID", stack.spec().id),
                     stack.SecretEnv("DATABASE_URL", "DATABASE_URL"),
                     Env("MQTT_URL", stack.MqttUrl()),
                     stack.SecretEnv("MQTT_USERNAME", "MQTT_EXPORTER_USERNAME"),
                     stack.SecretEnv("MQTT_PASSWORD", "MQTT_EXPORTER_PASSWORD"),
                     Env("MQTT_CLIENT_ID", stack.ExporterClientId())};
  if (!exporter.basic_auth_password.empty()) {
    env.push_back(stack.SecretEnv("EXPORTER_BASIC_AUTH_USERNAME", "EXPORTER_BASIC_AUTH_USERNAME"));
    env.push_back(stack.SecretEnv("EXPORTER_BASIC_AUTH_PASSWORD", "EXPORTER_BASIC_AUTH_PASSWORD"));
  }
  Value container = M({
      {"name", "exporter"},
      {"image", stack.Image(exporter.workload.image)},
      {"imagePullPolicy", exporter.workload.image.pull_policy},
      {"args", L({"--config", "/etc/billing-exporter/config.yaml"})},
      {"ports", L({ContainerPort("metrics", exporter.workload.port)})},
      {"env", L(std::move(env))},
      {"volumeMounts",
       L({M({{"name", "config"}, {"mountPath", "/etc/billing-exporter"}, {"readOnly", true}})})},
      {"securityContext", ContainerSecurityContext(true, {exporter.workload.port})},
      {"resources", exporter.workload.resources},
      {"readinessProbe", HttpProbe("/readyz", "metrics", 5, 15)},
      {"livenessProbe", HttpProbe("/healthz", "metrics", 10, 20)},
  });
  // Restricted: the image (FROM scratch, images/) runs as nonroot (65532) and writes nothing.
  return Deployment(stack, "exporter", {std::move(container)},
                    {ConfigVolume(stack.Name("exporter-config"))},
                    PodSecurityContext(exporter.workload));
}

// ingress.yaml
KubeObject IngressObject(const Stack& stack) {
  const CustomerSpec& spec = stack.spec();
  Value metadata = stack.Metadata(stack.Name("ingress"), "ingress");
  if (!spec.ingress.annotations.AsMap().empty()) {
    metadata.Set("annotations", spec.ingress.annotations);
  }
  auto path = [&](const std::string& path, const std::string& type, const std::string& component,
                  std::int64_t port) {
    return M({{"path", path},
              {"pathType", type},
              {"backend", M({{"service", M({{"name", stack.Name(component)},
                                            {"port", M({{"number", port}})}})}})}});
  };
  Value::List paths = {path("/", "Prefix", "dashboard", spec.dashboard.port),
                       path("/api", "Prefix", "api", spec.api.port)};
  if (spec.ingress.expose_metrics) {
    paths.push_back(path("/metrics", "Exact", "exporter", spec.exporter.workload.port));
  }
  Value ingress_spec = Value::EmptyMap();
  if (!spec.ingress.class_name.empty())
    ingress_spec.Set("ingressClassName", spec.ingress.class_name);
  if (spec.ingress.tls) {
    ingress_spec.Set("tls",
                     L({M({{"hosts", L({stack.Host()})}, {"secretName", stack.Name("tls")}})}));
  }
  ingress_spec.Set("rules",
                   L({M({{"host", stack.Host()}, {"http", M({{"paths", L(std::move(paths))}})}})}));
  return stack.Object("networking.k8s.io/v1", "Ingress", std::move(metadata),
                      {{"spec", std::move(ingress_spec)}});
}

// servicemonitor.yaml
KubeObject ServiceMonitorObject(const Stack& stack) {
  const auto& exporter = stack.spec().exporter;
  Value endpoint = M({{"port", "metrics"},
                      {"path", "/metrics"},
                      {"interval", exporter.service_monitor_interval},
                      {"scrapeTimeout", exporter.service_monitor_scrape_timeout},
                      // Billed to the namespace scraped, never to the exporter's own label.
                      {"honorLabels", false},
                      {"relabelings", L({M({{"sourceLabels", L({"__meta_kubernetes_namespace"})},
                                            {"regex", "customer-(.+)"},
                                            {"targetLabel", "customer_id"},
                                            {"action", "replace"}})})},
                      {"metricRelabelings",
                       L({M({{"regex", "exported_customer_id"}, {"action", "labeldrop"}})})}});
  if (!exporter.basic_auth_password.empty()) {
    endpoint.Set(
        "basicAuth",
        M({{"username", M({{"name", stack.SecretName()}, {"key", "EXPORTER_BASIC_AUTH_USERNAME"}})},
           {"password",
            M({{"name", stack.SecretName()}, {"key", "EXPORTER_BASIC_AUTH_PASSWORD"}})}}));
  }
  return stack.Object(
      "monitoring.coreos.com/v1", "ServiceMonitor",
      stack.Metadata(stack.Name("exporter"), "exporter"),
      {{"spec", M({{"selector", M({{"matchLabels", stack.SelectorLabels("exporter")}})},
                   {"namespaceSelector", M({{"matchNames", L({stack.ns()})}})},
                   {"endpoints", L({std::move(endpoint)})}})}});
}

}  // namespace

Result<ChartInfo> ParseChartInfo(const std::string& chart_yaml_text) {
  Value chart;
  try {
    chart = ParseYaml(chart_yaml_text);
  } catch (const std::runtime_error& error) {
    return Error{std::string("Chart.yaml: invalid YAML: ") + error.what()};
  }
  ChartInfo info;
  const std::array<std::pair<const char*, std::string*>, 3> fields = {
      {{"name", &info.name}, {"version", &info.version}, {"appVersion", &info.app_version}}};
  for (const auto& [key, target] : fields) {
    const Value* value = chart.Find(key);
    const auto text = value != nullptr ? ScalarText(*value) : std::nullopt;
    if (!text || text->empty()) return Error{std::string("Chart.yaml: ") + key + " is required"};
    *target = *text;
  }
  return info;
}

std::vector<KubeObject> RenderStack(const CustomerSpec& spec, const ChartInfo& chart,
                                    const RenderOptions& options) {
  const Stack stack(spec, chart, options);
  std::vector<KubeObject> objects;
  if (spec.create_namespace) objects.push_back(NamespaceObject(stack));
  if (spec.resource_quota.enabled) objects.push_back(ResourceQuotaObject(stack));
  if (spec.network_policy.enabled) {
    for (auto& policy : NetworkPolicyObjects(stack)) objects.push_back(std::move(policy));
  }
  objects.push_back(SecretObject(stack));
  objects.push_back(MosquittoConfigObject(stack));
  objects.push_back(ExporterConfigObject(stack));
  objects.push_back(PostgresServiceObject(stack));
  objects.push_back(ClusterIpService(stack, "mosquitto",
                                     {ServicePort("mqtt", spec.mosquitto.workload.port),
                                      ServicePort("websocket", spec.mosquitto.websocket_port)}));
  objects.push_back(ClusterIpService(stack, "api", {ServicePort("http", spec.api.port)}));
  objects.push_back(
      ClusterIpService(stack, "dashboard", {ServicePort("http", spec.dashboard.port)}));
  objects.push_back(
      ClusterIpService(stack, "exporter", {ServicePort("metrics", spec.exporter.workload.port)},
                       M({{"prometheus.io/scrape", "true"},
                          {"prometheus.io/port", std::to_string(spec.exporter.workload.port)},
                          {"prometheus.io/path", "/metrics"}})));
  objects.push_back(PostgresStatefulSetObject(stack));
  objects.push_back(MosquittoDeploymentObject(stack));
  objects.push_back(ApiDeploymentObject(stack));
  objects.push_back(DashboardDeploymentObject(stack));
  objects.push_back(ExporterDeploymentObject(stack));
  if (spec.ingress.enabled) objects.push_back(IngressObject(stack));
  if (spec.exporter.service_monitor) objects.push_back(ServiceMonitorObject(stack));
  return objects;
}

std::string ToYamlStream(const std::vector<KubeObject>& objects) {
  std::string out;
  for (const auto& object : objects) out += "---\n" + EmitYaml(object.manifest);
  return out;
}

Result<Value> MergeValues(const RenderRequest& request) {
  auto defaults = ParseValuesText(request.chart_values_yaml, "chart values.yaml");
  if (!defaults.ok()) return defaults;
  Value values = std::move(defaults).value();
  MergeInto(values, request.provisioner_values);
  for (const auto& [name, text] : request.value_files) {
    auto layer = ParseValuesText(text, name);
    if (!layer.ok()) return layer;
    MergeInto(values, layer.value());
  }
  for (const auto& argument : request.set_arguments) {
    auto layer = ParseSetArgument(argument);
    if (!layer.ok()) return layer;
    MergeInto(values, layer.value());
  }
  return values;
}

namespace {

// Fills in a broker user's generated password and hash, or names what is missing.
std::optional<std::string> CompleteBrokerUser(const std::string& path,
                                              CustomerSpec::BrokerUser& user,
                                              const RenderOptions& options) {
  const bool can_hash = static_cast<bool>(options.hash_broker_password);
  if (user.password.empty()) {
    if (!options.generate_password || !can_hash) {
      return path + ".password: is required, with passwordHash (its Mosquitto $7$ hash; " +
             "`provisioner render` generates both)";
    }
    user.password = options.generate_password();
  }
  if (user.password_hash.empty()) {
    if (!can_hash) {
      return path + ".passwordHash: is required with the password (its Mosquitto $7$ hash: " +
             "what mosquitto_passwd writes after \"user:\")";
    }
    user.password_hash = options.hash_broker_password(user.password);
  }
  return std::nullopt;
}

}  // namespace

Result<std::vector<KubeObject>> Render(const RenderRequest& request) {
  auto chart = ParseChartInfo(request.chart_yaml);
  if (!chart.ok()) return Error{chart.error()};
  auto values = MergeValues(request);
  if (!values.ok()) return Error{values.error()};
  auto spec = ParseCustomerSpec(values.value());
  if (!spec.ok()) return Error{spec.error()};
  CustomerSpec checked = std::move(spec).value();
  if (checked.postgres.password.empty()) {
    if (!request.options.generate_password) {
      return Error{
          "postgres.password: is required (at least 8 characters from A-Z a-z 0-9 . _ ~ -)"};
    }
    checked.postgres.password = request.options.generate_password();
  }
  for (auto [path, user] : {std::pair{"mosquitto.auth.exporter", &checked.mosquitto.exporter_user},
                            std::pair{"mosquitto.auth.device", &checked.mosquitto.device_user}}) {
    if (auto error = CompleteBrokerUser(path, *user, request.options)) return Error{*error};
  }
  return RenderStack(checked, chart.value(), request.options);
}

}  // namespace billing::provisioner
