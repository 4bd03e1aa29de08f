// TLS for the exporter's listener through Debian's CivetWeb 1.15 and OpenSSL 3.
//
// Why CivetWeb's HTTPS fails out of the box: Debian builds it with OpenSSL loaded at run time
// (dlopen of the unversioned names "libssl.so" and "libcrypto.so", which exist only with
// libssl-dev) at the OpenSSL 1.1 API level, so it also looks up SSL_get_peer_certificate, which
// OpenSSL 3 exports only as SSL_get1_peer_certificate. The lookup fails, the function pointer
// stays null and the first TLS connection crashes the process. The fix: before
// mg_init_library(MG_FEATURES_SSL), dlopen two tiny shim libraries (civetweb_openssl3/, installed
// beside the binary in ../lib/billing-exporter/) whose SONAMEs are exactly those names; the
// dynamic loader then hands them to CivetWeb's dlopen, their dependencies are the real
// libssl.so.3/libcrypto.so.3, and the libssl shim defines the missing symbol.
#pragma once

#include <string>

#include "web_config.h"

namespace billing::exporter {

/// Loads the shims and initialises CivetWeb with TLS; throws std::runtime_error saying what is
/// missing. Idempotent.
void EnableCivetwebTls();

/// Configures CivetWeb's server SSL_CTX (as `void*`, CivetWeb's type) from the web config:
/// certificate chain, key (checked against the certificate), minimum version, client
/// certificates. Returns "" or what is wrong, naming the field.
std::string ConfigureTlsContext(void* ssl_ctx, const TlsServerConfig& tls);

}  // namespace billing::exporter
