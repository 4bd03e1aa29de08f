#include "tls_server.h"

#include <civetweb.h>
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace billing::exporter {
namespace {

std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  if (code == 0) return "no OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return text;
}

std::filesystem::path ShimDirectory() {
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error)
    throw std::runtime_error("TLS: cannot find the exporter's own path: " + error.message());
  return exe.parent_path() / BILLING_TLS_SHIM_RELATIVE_DIR;
}

}  // namespace

void EnableCivetwebTls() {
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    const auto dir = ShimDirectory();
    // libcrypto first: the libssl shim's libssl.so.3 needs libcrypto.so.3, which is the same
    // object either way, but CivetWeb opens "libcrypto.so" too.
    for (const char* name : {"libbilling-civetweb-crypto.so", "libbilling-civetweb-ssl.so"}) {
      const auto path = (dir / name).string();
      // Never closed: CivetWeb keeps using the handles for the life of the process.
      if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
        failure = std::string("TLS: cannot load ") + path + " (" + dlerror() +
                  "); it is installed beside billing-exporter in ../lib/billing-exporter/";
        return;
      }
    }
    if ((mg_init_library(MG_FEATURES_SSL) & MG_FEATURES_SSL) == 0) {
      failure = "TLS: CivetWeb could not initialise OpenSSL";
    }
  });
  if (!failure.empty()) throw std::runtime_error(failure);
}

std::string ConfigureTlsContext(void* ssl_ctx, const TlsServerConfig& tls) {
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  const std::string where = "tls_server_config.";
  if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1)
    return where + "cert_file: cannot load " + tls.cert_file + ": " + OpenSslError();
  if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return where + "key_file: cannot load " + tls.key_file + ": " + OpenSslError();
  if (SSL_CTX_check_private_key(ctx) != 1)
    return where + "key_file: " + tls.key_file + " is not the key of " + tls.cert_file;
  const int min_version = tls.min_version == "TLS13" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1)
    return where + "min_version: " + OpenSslError();
  if (!tls.client_ca_file.empty() &&
      SSL_CTX_load_verify_locations(ctx, tls.client_ca_file.c_str(), nullptr) != 1) {
    return where + "client_ca_file: cannot load " + tls.client_ca_file + ": " + OpenSslError();
  }
  // exporter-toolkit's client_auth_type, in OpenSSL's terms. "Any" certificate without
  // verification is accepted by a callback that says yes to every chain.
  const auto& type = tls.client_auth_type;
  int mode = SSL_VERIFY_NONE;
  SSL_verify_cb accept_any = nullptr;
  if (type == "RequestClientCert" || type == "RequireAnyClientCert") {
    mode = SSL_VERIFY_PEER | (type == "RequireAnyClientCert" ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    accept_any = [](int, X509_STORE_CTX*) { return 1; };
  } else if (type == "VerifyClientCertIfGiven") {
    mode = SSL_VERIFY_PEER;
  } else if (type == "RequireAndVerifyClientCert") {
    mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  SSL_CTX_set_verify(ctx, mode, accept_any);
  return "";
}

}  // namespace billing::exporter
