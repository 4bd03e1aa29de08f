#include <algorithm>
#include <regex>
#include <stdexcept>

#include "billing/provisioner/customer_spec.h"

namespace billing::provisioner {

bool IsDns1123Label(const std::string& text) {
  static const std::regex kLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return text.size() <= 63 && std::regex_match(text, kLabel);
}

bool IsDns1123Subdomain(const std::string& text) {
  static const std::regex kSubdomain(
      R"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)");
  return text.size() <= 253 && std::regex_match(text, kSubdomain);
}

bool IsQuantity(const std::string& text) {
  // k8s.io/apimachinery resource.Quantity: a signed decimal with an optional binary-SI,
  // decimal-SI or exponent suffix.
  static const std::regex kQuantity(
      R"([+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?)");
  return std::regex_match(text, kQuantity);
}

bool IsQualifiedName(const std::string& text) {
  static const std::regex kName("([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)");
  const auto slash = text.find('/');
  const std::string name = slash == std::string::npos ? text : text.substr(slash + 1);
  if (name.empty() || name.size() > 63 || !std::regex_match(name, kName)) return false;
  if (slash == std::string::npos) return true;
  const std::string prefix = text.substr(0, slash);
  return !prefix.empty() && IsDns1123Subdomain(prefix);
}

namespace {

// Thrown inside this file only, turned into an Error at ParseCustomerSpec's boundary.
struct SpecError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string Quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

[[noreturn]] void Fail(const std::string& path, const std::string& problem) {
  throw SpecError(path + ": " + problem);
}

// Reads typed values by dotted path from the merged values, failing with the path.
class Reader {
 public:
  explicit Reader(const Value& root) : root_(root) {}

  const Value* Find(const std::string& path) const { return root_.FindPath(path); }

  /// Any scalar as text (Helm's toString); null and absent are "".
  std::string Text(const std::string& path) const {
    const Value* value = Find(path);
    if (value == nullptr) return "";
    auto text = ScalarText(*value);
    if (!text) Fail(path, "must be a string, not a list or map");
    return *text;
  }

  std::string Required(const std::string& path, const std::string& what) const {
    std::string text = Text(path);
    if (text.empty()) Fail(path, "is required (" + what + ")");
    return text;
  }

  bool Bool(const std::string& path) const {
    const Value* value = Find(path);
    if (value == nullptr || value->IsNull()) return false;
    if (!value->IsBool()) Fail(path, "must be true or false");
    return value->AsBool();
  }

  std::int64_t Integer(const std::string& path, std::int64_t min, std::int64_t max) const {
    const Value* value = Find(path);
    const bool whole_float =
        value != nullptr && value->IsFloat() &&
        value->AsFloat() == static_cast<double>(static_cast<std::int64_t>(value->AsFloat()));
    if (value == nullptr || !(value->IsInt() || whole_float)) {
      Fail(path, "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
    }
    const std::int64_t number =
        value->IsInt() ? value->AsInt() : static_cast<std::int64_t>(value->AsFloat());
    if (number < min || number > max) {
      Fail(path, std::to_string(number) + " is not from " + std::to_string(min) + " to " +
                     std::to_string(max));
    }
    return number;
  }

  std::int64_t Port(const std::string& path) const { return Integer(path, 1, 65535); }

  std::string Matching(const std::string& path, const std::regex& pattern,
                       const std::string& expectation) const {
    std::string text = Text(path);
    if (!std::regex_match(text, pattern)) Fail(path, Quoted(text) + " is not " + expectation);
    return text;
  }

  ImageSpec Image(const std::string& path) const {
    static const std::regex kRepository(
        R"([a-z0-9][a-z0-9._-]*(:[0-9]+)?(/[a-z0-9][a-z0-9._-]*)*)");
    static const std::regex kTag(R"(([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?)");
    static const std::regex kPullPolicy(R"(Always|IfNotPresent|Never)");
    const Value* image = Find(path);
    if (image == nullptr || !image->IsMap()) {
      Fail(path, "must be a map of repository, tag (empty: the chart's appVersion) and pullPolicy");
    }
    ImageSpec spec;
    spec.repository =
        Matching(path + ".repository", kRepository,
                 "an image repository (lowercase, e.g. registry.example.com/iotistic/api)");
    spec.tag = Matching(path + ".tag", kTag,
                        "an image tag (letters, digits, '_', '.', '-'; empty: the chart's "
                        "appVersion)");
    spec.pull_policy = Matching(path + ".pullPolicy", kPullPolicy, "Always, IfNotPresent or Never");
    for (const auto& [key, member] : image->AsMap()) {
      if (key != "repository" && key != "tag" && key != "pullPolicy") {
        Fail(path + "." + key, "unknown key (repository, tag, pullPolicy)");
      }
    }
    return spec;
  }

  std::string Quantity(const std::string& path) const {
    std::string text = Text(path);
    if (!IsQuantity(text))
      Fail(path, Quoted(text) + " is not a Kubernetes quantity (e.g. 500m, 4Gi)");
    return text;
  }

  /// A map of string keys to strings, keys sorted (Helm's toYaml sorts them too).
  Value StringMap(const std::string& path) const {
    const Value* value = Find(path);
    Value result = Value::EmptyMap();
    if (value == nullptr || value->IsNull()) return result;
    if (!value->IsMap()) Fail(path, "must be a map");
    auto entries = value->AsMap();
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [key, member] : entries) {
      if (!IsQualifiedName(key)) Fail(path + "." + key, "is not a valid annotation key");
      if (!member.IsString()) Fail(path + "." + key, "must be a string (quote it)");
      result.Set(key, member);
    }
    return result;
  }

  /// {requests: {...}, limits: {...}}, sorted, every quantity checked.
  Value Resources(const std::string& path) const {
    const Value* value = Find(path);
    Value result = Value::EmptyMap();
    if (value == nullptr || value->IsNull()) return result;
    if (!value->IsMap()) Fail(path, "must be a map with requests and limits");
    for (const char* section : {"limits", "requests"}) {
      const std::string section_path = path + "." + section;
      const Value* members = value->Find(section);
      if (members == nullptr || members->IsNull()) continue;
      if (!members->IsMap()) Fail(section_path, "must be a map of resource names to quantities");
      auto entries = members->AsMap();
      std::sort(entries.begin(), entries.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      Value checked = Value::EmptyMap();
      for (const auto& [name, quantity] : entries) {
        if (!IsQualifiedName(name)) Fail(section_path + "." + name, "is not a resource name");
        Quantity(section_path + "." + name);
        checked.Set(name, quantity);
      }
      result.Set(section, std::move(checked));
    }
    for (const auto& [key, member] : value->AsMap()) {
      if (key != "limits" && key != "requests") Fail(path + "." + key, "unknown key");
    }
    return result;
  }

  WorkloadSpec Workload(const std::string& prefix, const std::string& port_key) const {
    WorkloadSpec workload;
    workload.image = Image(prefix + ".image");
    workload.port = Port(prefix + "." + port_key);
    workload.resources = Resources(prefix + ".resources");
    return workload;
  }

  /// prefix.runAsUser and prefix.runAsGroup: the image's non-root user (restricted: never 0).
  void RunAs(const std::string& prefix, WorkloadSpec& workload) const {
    workload.run_as_user = Integer(prefix + ".runAsUser", 1, 2147483647);
    workload.run_as_group = Integer(prefix + ".runAsGroup", 1, 2147483647);
  }

  /// A list of strings each matching `pattern`; absent or null is empty.
  std::vector<std::string> MatchingList(const std::string& path, const std::regex& pattern,
                                        const std::string& expectation) const {
    const Value* value = Find(path);
    std::vector<std::string> items;
    if (value == nullptr || value->IsNull()) return items;
    if (!value->IsList()) Fail(path, "must be a list");
    for (const auto& item : value->AsList()) {
      auto text = ScalarText(item);
      if (!text || !std::regex_match(*text, pattern)) {
        Fail(path,
             (text ? Quoted(*text) : std::string("a list or map")) + " is not " + expectation);
      }
      items.push_back(*text);
    }
    return items;
  }

 private:
  const Value& root_;
};

void ReadCustomer(const Reader& in, CustomerSpec& spec) {
  static const std::regex kEmail(R"([^@\s]+@[^@\s]+)");
  spec.id = in.Required("customer.id", "a DNS-1123 label, e.g. abc123");
  if (spec.id.size() > kMaxCustomerIdLength) {
    Fail("customer.id", Quoted(spec.id) + " is longer than " +
                            std::to_string(kMaxCustomerIdLength) +
                            " characters (customer-{id}-postgres must fit Kubernetes' "
                            "52-character StatefulSet name limit)");
  }
  if (!IsDns1123Label(spec.id)) {
    Fail("customer.id", Quoted(spec.id) +
                            " is not a DNS-1123 label (lowercase letters, digits and '-', "
                            "starting and ending with a letter or digit)");
  }
  spec.email = in.Text("customer.email");
  if (!spec.email.empty() && !std::regex_match(spec.email, kEmail)) {
    Fail("customer.email", Quoted(spec.email) +
                               " is not an email address (it is optional: leave "
                               "it empty)");
  }
  spec.company_name = in.Text("customer.companyName");
  spec.license_key = in.Required("license.key", "the customer's JWT license key");
  spec.domain_base = in.Text("domain.base");
  if (!IsDns1123Subdomain(spec.domain_base) || spec.domain_base.size() > 200) {
    Fail("domain.base", Quoted(spec.domain_base) +
                            " is not a DNS-1123 subdomain of at most 200 characters (e.g. "
                            "iotistic.cloud)");
  }
  spec.create_namespace = in.Bool("namespace.create");
}

void ReadPostgres(const Reader& in, CustomerSpec& spec) {
  static const std::regex kPassword(R"([A-Za-z0-9._~-]{8,})");
  static const std::regex kSqlIdentifier(R"([a-z_][a-z0-9_]{0,62})");
  spec.postgres.workload = in.Workload("postgres", "port");
  in.RunAs("postgres", spec.postgres.workload);
  spec.postgres.database =
      in.Matching("postgres.database", kSqlIdentifier, "a lowercase SQL identifier");
  spec.postgres.username =
      in.Matching("postgres.username", kSqlIdentifier, "a lowercase SQL identifier");
  spec.postgres.password = in.Text("postgres.password");
  if (!spec.postgres.password.empty() && !std::regex_match(spec.postgres.password, kPassword)) {
    Fail("postgres.password",
         "must be at least 8 characters from A-Z a-z 0-9 . _ ~ - (it is embedded in "
         "DATABASE_URL); leave it empty to have one generated");
  }
  spec.postgres.storage_size = in.Quantity("postgres.storageSize");
  spec.postgres.storage_class = in.Text("postgres.storageClass");
  if (!spec.postgres.storage_class.empty() && !IsDns1123Subdomain(spec.postgres.storage_class)) {
    Fail("postgres.storageClass",
         Quoted(spec.postgres.storage_class) + " is not a StorageClass name (DNS-1123 subdomain)");
  }
}

// A broker user; password and passwordHash may both be empty (Render generates them or refuses).
CustomerSpec::BrokerUser ReadBrokerUser(const Reader& in, const std::string& path) {
  static const std::regex kUsername(R"([A-Za-z0-9._-]{1,64})");
  static const std::regex kPassword(R"([A-Za-z0-9._~-]{16,})");
  // mosquitto_passwd's PBKDF2-SHA512 entry: a 12-byte salt and a 64-byte hash in base64.
  static const std::regex kHash(R"(\$7\$[1-9][0-9]{0,8}\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==)");
  CustomerSpec::BrokerUser user;
  user.username =
      in.Matching(path + ".username", kUsername, "1 to 64 characters from A-Z a-z 0-9 . _ -");
  user.password = in.Text(path + ".password");
  if (!user.password.empty() && !std::regex_match(user.password, kPassword)) {
    Fail(path + ".password",
         "must be at least 16 characters from A-Z a-z 0-9 . _ ~ -; leave it and passwordHash "
         "empty to have them generated");
  }
  user.password_hash = in.Text(path + ".passwordHash");
  if (!user.password_hash.empty() && !std::regex_match(user.password_hash, kHash)) {
    Fail(path + ".passwordHash",
         "is not a Mosquitto PBKDF2-SHA512 hash ($7$iterations$salt$hash, what mosquitto_passwd "
         "writes after \"user:\")");
  }
  // A password without its hash is completed by Render when it can hash.
  if (user.password.empty() && !user.password_hash.empty()) {
    Fail(path + ".password", "is required with passwordHash (the clients need it)");
  }
  return user;
}

void ReadMosquitto(const Reader& in, CustomerSpec& spec) {
  spec.mosquitto.workload = in.Workload("mosquitto", "mqttPort");
  in.RunAs("mosquitto", spec.mosquitto.workload);
  spec.mosquitto.websocket_port = in.Port("mosquitto.websocketPort");
  if (spec.mosquitto.websocket_port == spec.mosquitto.workload.port) {
    Fail("mosquitto.websocketPort", "must differ from mosquitto.mqttPort");
  }
  spec.mosquitto.sys_interval_seconds = in.Integer("mosquitto.sysInterval", 1, 3600);
  // Below 1e6: Helm reads values as float64 and would print larger numbers as 1e+06.
  spec.mosquitto.max_queued_messages = in.Integer("mosquitto.maxQueuedMessages", 0, 999999);
  static const std::regex kMeteringSource("plugin|subscription");
  spec.mosquitto.plugin_metering = in.Matching("mosquitto.metering.source", kMeteringSource,
                                               "plugin or subscription") == "plugin";
  spec.mosquitto.snapshot_interval_seconds =
      in.Integer("mosquitto.metering.snapshotInterval", 1, 3600);
  spec.mosquitto.exporter_user = ReadBrokerUser(in, "mosquitto.auth.exporter");
  spec.mosquitto.device_user = ReadBrokerUser(in, "mosquitto.auth.device");
  if (spec.mosquitto.exporter_user.username == spec.mosquitto.device_user.username) {
    Fail("mosquitto.auth.device.username", "must differ from mosquitto.auth.exporter.username");
  }
}

void ReadExporter(const Reader& in, CustomerSpec& spec) {
  static const std::regex kExporterDuration(R"(([0-9]+(ms|s|m|h))+)");
  // prometheus-operator's Duration pattern (the ServiceMonitor CRD checks it too).
  static const std::regex kPrometheusDuration(
      R"((0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?))");
  static const std::regex kUsername(R"([^:\s]+)");
  spec.exporter.workload = in.Workload("exporter", "port");
  // The platform's own image (images/billing-exporter.Containerfile): nonroot, 65532.
  spec.exporter.workload.run_as_user = 65532;
  spec.exporter.workload.run_as_group = 65532;
  spec.exporter.sample_interval =
      in.Matching("exporter.sampleInterval", kExporterDuration, "a duration such as 15s or 1m30s");
  spec.exporter.basic_auth_password = in.Text("exporter.basicAuth.password");
  spec.exporter.basic_auth_username = in.Text("exporter.basicAuth.username");
  if (!spec.exporter.basic_auth_password.empty() &&
      !std::regex_match(spec.exporter.basic_auth_username, kUsername)) {
    Fail("exporter.basicAuth.username", "is required with a password, without ':' or spaces");
  }
  spec.exporter.service_monitor = in.Bool("exporter.serviceMonitor.enabled");
  spec.exporter.service_monitor_interval = in.Matching(
      "exporter.serviceMonitor.interval", kPrometheusDuration, "a Prometheus duration (30s)");
  spec.exporter.service_monitor_scrape_timeout = in.Matching(
      "exporter.serviceMonitor.scrapeTimeout", kPrometheusDuration, "a Prometheus duration (10s)");
}

// After ReadExporter: exposing /metrics needs the exporter's basic-auth password.
void ReadIngress(const Reader& in, CustomerSpec& spec) {
  spec.ingress.enabled = in.Bool("ingress.enabled");
  spec.ingress.class_name = in.Text("ingress.className");
  if (!spec.ingress.class_name.empty() && !IsDns1123Subdomain(spec.ingress.class_name)) {
    Fail("ingress.className", Quoted(spec.ingress.class_name) + " is not an IngressClass name");
  }
  spec.ingress.annotations = in.StringMap("ingress.annotations");
  spec.ingress.tls = in.Bool("ingress.tls.enabled");
  spec.ingress.expose_metrics = in.Bool("ingress.exposeMetrics");
  if (spec.ingress.enabled && spec.ingress.expose_metrics &&
      spec.exporter.basic_auth_password.empty()) {
    Fail("exporter.basicAuth.password",
         "is required when ingress.exposeMetrics is true: /metrics is never public without "
         "auth");
  }
}

void ReadResourceQuota(const Reader& in, CustomerSpec& spec) {
  static const std::regex kCount(R"([0-9]+)");
  spec.resource_quota.enabled = in.Bool("resourceQuota.enabled");
  spec.resource_quota.cpu = in.Quantity("resourceQuota.cpu");
  spec.resource_quota.memory = in.Quantity("resourceQuota.memory");
  spec.resource_quota.pvcs = in.Matching("resourceQuota.pvcs", kCount, "a whole number");
  spec.resource_quota.services = in.Matching("resourceQuota.services", kCount, "a whole number");
}

void ReadNetworkPolicy(const Reader& in, CustomerSpec& spec) {
  spec.network_policy.enabled = in.Bool("networkPolicy.enabled");
  spec.network_policy.ingress_controller_namespace =
      in.Text("networkPolicy.ingressControllerNamespace");
  if (!IsDns1123Label(spec.network_policy.ingress_controller_namespace)) {
    Fail("networkPolicy.ingressControllerNamespace",
         Quoted(spec.network_policy.ingress_controller_namespace) + " is not a namespace name");
  }
  for (auto [path, name] :
       {std::pair{"networkPolicy.prometheusNamespace", &spec.network_policy.prometheus_namespace},
        {"networkPolicy.deviceIngressNamespace", &spec.network_policy.device_ingress_namespace}}) {
    *name = in.Text(path);
    if (!name->empty() && !IsDns1123Label(*name))
      Fail(path, Quoted(*name) + " is not a namespace name");
  }
  static const std::regex kIpv4Cidr(
      R"(((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9]))");
  spec.network_policy.api_server_cidrs =
      in.MatchingList("networkPolicy.apiServerCidrs", kIpv4Cidr, "an IPv4 CIDR (e.g. 10.0.0.0/8)");
}

// The steps in a fixed order (ReadIngress after ReadExporter): the first wrong value is reported.
CustomerSpec ReadSpec(const Reader& in) {
  CustomerSpec spec;
  ReadCustomer(in, spec);
  ReadPostgres(in, spec);
  ReadMosquitto(in, spec);
  for (auto [prefix, workload] : {std::pair{"api", &spec.api}, {"dashboard", &spec.dashboard}}) {
    *workload = in.Workload(prefix, "port");
    in.RunAs(prefix, *workload);
    workload->read_only_root_filesystem = in.Bool(std::string(prefix) + ".readOnlyRootFilesystem");
  }
  ReadExporter(in, spec);
  ReadIngress(in, spec);
  ReadResourceQuota(in, spec);
  ReadNetworkPolicy(in, spec);
  return spec;
}

}  // namespace

Result<CustomerSpec> ParseCustomerSpec(const Value& values) {
  try {
    return ReadSpec(Reader(values));
  } catch (const SpecError& error) {
    return Error{error.what()};
  }
}

}  // namespace billing::provisioner
