// provisioner/kube: credentials from a kubeconfig or the in-cluster service account.
#include "kubeconfig.h"

#include <yaml-cpp/yaml.h>

#include <sstream>
#include <stdexcept>

#include "billing/common/base64.h"
#include "billing/common/file.h"

namespace billing::provisioner {
namespace {

constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

// Thrown while reading a kubeconfig; turned into Result's Error at the public boundary.
struct FieldError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

bool LooksLikePem(const std::string& text) { return text.find("-----BEGIN ") != std::string::npos; }

// ----------------------------------------------------------------------------------------------
// kubeconfig

// A kubeconfig string field; empty if absent. `where` is the path of `parent` for messages.
std::string OptionalString(const YAML::Node& parent, const std::string& key,
                           const std::string& where) {
  const YAML::Node node = parent[key];
  if (!node.IsDefined() || node.IsNull()) return std::string();
  if (!node.IsScalar()) throw FieldError(where + "." + key + ": must be a string");
  return node.as<std::string>();
}

std::string RequiredString(const YAML::Node& parent, const std::string& key,
                           const std::string& where) {
  std::string value = OptionalString(parent, key, where);
  if (value.empty()) throw FieldError(where + "." + key + ": missing");
  return value;
}

// The inner map (`cluster`, `context` or `user`) of the entry named `name` in the list `list`.
YAML::Node FindNamed(const YAML::Node& root, const std::string& list, const std::string& inner,
                     const std::string& name, const std::string& referrer) {
  // yaml-cpp: only IsDefined() may be asked of a missing key's node; anything else throws.
  const YAML::Node entries = root[list];
  const bool present = entries.IsDefined() && !entries.IsNull();
  if (present && !entries.IsSequence()) throw FieldError(list + ": must be a list");
  if (present) {
    for (const auto& entry : entries) {
      if (!entry.IsMap() || OptionalString(entry, "name", list + "[]") != name) continue;
      const YAML::Node node = entry[inner];
      if (!node.IsMap()) throw FieldError(list + "[" + name + "]." + inner + ": missing");
      return node;
    }
  }
  throw FieldError(list + ": no entry named \"" + name + "\" (named by " + referrer + ")");
}

std::filesystem::path Resolve(const std::string& path, const std::string& base_dir) {
  const std::filesystem::path p(path);
  return p.is_relative() && !base_dir.empty() ? std::filesystem::path(base_dir) / p : p;
}

// A PEM from `<key>-data` (base64, preferred as kubectl does) or the file `<key>`; empty if
// neither is set.
std::string PemField(const YAML::Node& parent, const std::string& key, const std::string& where,
                     const std::string& base_dir) {
  const std::string data = OptionalString(parent, key + "-data", where);
  if (!data.empty()) {
    auto decoded = common::Base64Decode(data);
    if (!decoded) throw FieldError(where + "." + key + "-data: not valid base64");
    if (!LooksLikePem(*decoded)) throw FieldError(where + "." + key + "-data: not a PEM document");
    return *decoded;
  }
  const std::string file = OptionalString(parent, key, where);
  if (file.empty()) return std::string();
  const auto path = Resolve(file, base_dir);
  auto text = common::ReadTextFile(path);
  if (!text) throw FieldError(where + "." + key + ": cannot read " + path.string());
  if (!LooksLikePem(*text))
    throw FieldError(where + "." + key + ": " + path.string() + " is not PEM");
  return *text;
}

void ParseCluster(const YAML::Node& cluster, const std::string& where, const std::string& base_dir,
                  KubeCredentials& out) {
  std::string server = RequiredString(cluster, "server", where);
  if (server.rfind("https://", 0) != 0 && server.rfind("http://", 0) != 0) {
    throw FieldError(where + ".server: \"" + server + "\" is not an http(s) URL");
  }
  while (!server.empty() && server.back() == '/') server.pop_back();
  out.server = server;
  out.ca_pem = PemField(cluster, "certificate-authority", where, base_dir);
  const YAML::Node insecure = cluster["insecure-skip-tls-verify"];
  if (insecure.IsDefined() && !insecure.IsNull()) {
    try {
      out.insecure_skip_tls_verify = insecure.as<bool>();
    } catch (const YAML::Exception&) {
      throw FieldError(where + ".insecure-skip-tls-verify: must be true or false");
    }
  }
  // kubectl refuses the combination too: a CA that is then not checked is a configuration error.
  if (out.insecure_skip_tls_verify && !out.ca_pem.empty()) {
    throw FieldError(where +
                     ".insecure-skip-tls-verify: cannot be true together with a "
                     "certificate-authority");
  }
}

void ParseUser(const YAML::Node& user, const std::string& where, const std::string& base_dir,
               KubeCredentials& out) {
  for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
    if (user[unsupported].IsDefined()) {
      throw FieldError(where + "." + unsupported +
                       ": not supported; use token, tokenFile or client-certificate/client-key");
    }
  }
  out.bearer_token = OptionalString(user, "token", where);
  const std::string token_file = OptionalString(user, "tokenFile", where);
  if (!token_file.empty()) {
    const auto path = Resolve(token_file, base_dir);
    if (!common::ReadTextFile(path))
      throw FieldError(where + ".tokenFile: cannot read " + path.string());
    out.bearer_token_file = path.string();
  }
  out.client_certificate_pem = PemField(user, "client-certificate", where, base_dir);
  out.client_key_pem = PemField(user, "client-key", where, base_dir);
  if (out.client_certificate_pem.empty() != out.client_key_pem.empty()) {
    const char* missing = out.client_key_pem.empty() ? "client-key" : "client-certificate";
    throw FieldError(where + "." + missing + ": missing (a client certificate needs both)");
  }
}

KubeCredentials ParseKubeconfigRoot(const YAML::Node& root, const std::string& base_dir) {
  const std::string current = OptionalString(root, "current-context", "kubeconfig");
  if (current.empty()) throw FieldError("current-context: not set");
  const YAML::Node context = FindNamed(root, "contexts", "context", current, "current-context");
  const std::string context_where = "contexts[" + current + "].context";
  const std::string cluster_name = RequiredString(context, "cluster", context_where);
  KubeCredentials credentials;
  ParseCluster(FindNamed(root, "clusters", "cluster", cluster_name, context_where + ".cluster"),
               "clusters[" + cluster_name + "].cluster", base_dir, credentials);
  // A context without a user is anonymous access: legal, if rarely useful.
  const std::string user_name = OptionalString(context, "user", context_where);
  if (!user_name.empty()) {
    ParseUser(FindNamed(root, "users", "user", user_name, context_where + ".user"),
              "users[" + user_name + "].user", base_dir, credentials);
  }
  return credentials;
}

}  // namespace

Result<KubeCredentials> ParseKubeconfig(const std::string& text, const std::string& base_dir) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return Error{"kubeconfig: not a YAML mapping"};
    return ParseKubeconfigRoot(root, base_dir);
  } catch (const FieldError& e) {
    return Error{std::string("kubeconfig: ") + e.what()};
  } catch (const YAML::Exception& e) {
    return Error{std::string("kubeconfig: not valid YAML: ") + e.what()};
  }
}

Result<KubeCredentials> LoadKubeCredentials(const std::function<const char*(const char*)>& getenv) {
  return LoadKubeCredentials(getenv, kServiceAccountDir);
}

Result<KubeCredentials> LoadKubeCredentials(const std::function<const char*(const char*)>& getenv,
                                            const std::filesystem::path& service_account_dir) {
  const auto env = [&](const char* name) {
    const char* value = getenv(name);
    return value == nullptr ? std::string() : std::string(value);
  };
  const std::string kubeconfig = env("KUBECONFIG");
  if (!kubeconfig.empty()) {
    // KUBECONFIG is a list like PATH; kubectl merges them, we take the first one.
    std::string first;
    std::istringstream paths(kubeconfig);
    while (first.empty() && std::getline(paths, first, ':')) {
    }
    const auto text = common::ReadTextFile(first);
    if (!text) return Error{"KUBECONFIG: cannot read " + first};
    auto parsed = ParseKubeconfig(*text, std::filesystem::path(first).parent_path().string());
    if (!parsed.ok()) return Error{first + ": " + parsed.error()};
    return parsed;
  }
  const std::string host = env("KUBERNETES_SERVICE_HOST");
  const std::string port = env("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty()) {
    return Error{
        "no Kubernetes credentials: KUBECONFIG is not set and KUBERNETES_SERVICE_HOST/"
        "KUBERNETES_SERVICE_PORT are not set either (not running in a cluster?)"};
  }
  KubeCredentials credentials;
  const bool ipv6 = host.find(':') != std::string::npos;
  credentials.server = "https://" + (ipv6 ? "[" + host + "]" : host) + ":" + port;
  const auto token = service_account_dir / "token";
  if (!common::ReadTextFile(token))
    return Error{"in-cluster service account: cannot read " + token.string()};
  credentials.bearer_token_file = token.string();
  const auto ca = service_account_dir / "ca.crt";
  auto ca_pem = common::ReadTextFile(ca);
  if (!ca_pem || !LooksLikePem(*ca_pem)) {
    return Error{"in-cluster service account: cannot read a PEM CA from " + ca.string()};
  }
  credentials.ca_pem = std::move(*ca_pem);
  return credentials;
}

}  // namespace billing::provisioner
