// provisioner/kube: where the Kubernetes API server is and how to prove who we are, from a
// kubeconfig ($KUBECONFIG) or the in-cluster service account. Reads files; no network.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

#include "billing/provisioner/result.h"

namespace billing::provisioner {

/// Where the API server is and how to prove who we are. Exactly what libcurl needs.
struct KubeCredentials {
  std::string server;  // "https://host:port" or "http://127.0.0.1:port" (tests); no trailing '/'
  std::string ca_pem;  // PEM of the CA that signs the server's certificate; empty: system CAs
  bool insecure_skip_tls_verify = false;
  std::string bearer_token;            // static token (kubeconfig `token`)
  std::string bearer_token_file;       // re-read before each request (projected tokens rotate)
  std::string client_certificate_pem;  // client certificate auth (kubeconfig client-certificate)
  std::string client_key_pem;
};

/// Parses a kubeconfig document: the current-context's cluster and user (server,
/// certificate-authority(-data), insecure-skip-tls-verify, token, tokenFile,
/// client-certificate(-data), client-key(-data)); relative file paths are relative to
/// `base_dir`. The error names the kubeconfig field at fault.
Result<KubeCredentials> ParseKubeconfig(const std::string& text, const std::string& base_dir);

/// $KUBECONFIG (its first path) if set, else the in-cluster service account
/// ($KUBERNETES_SERVICE_HOST, $KUBERNETES_SERVICE_PORT,
/// /var/run/secrets/kubernetes.io/serviceaccount token and ca.crt). `getenv` is injectable for
/// tests.
Result<KubeCredentials> LoadKubeCredentials(
    const std::function<const char*(const char*)>& getenv = ::getenv);
/// The same with the service-account directory injectable (tests); the default is
/// /var/run/secrets/kubernetes.io/serviceaccount.
Result<KubeCredentials> LoadKubeCredentials(const std::function<const char*(const char*)>& getenv,
                                            const std::filesystem::path& service_account_dir);

}  // namespace billing::provisioner
