// Loaded (never linked) by billing-exporter before CivetWeb starts TLS; see tls_server.cpp.
// Its SONAME is "libssl.so", the name Debian's CivetWeb 1.15 dlopen()s, so that dlopen returns
// this object; symbol lookups through it reach the real libssl.so.3 it depends on, except for the
// one function OpenSSL 3 renamed, which it provides.
#include <openssl/ssl.h>

// OpenSSL 3 keeps the old name only as a macro for SSL_get1_peer_certificate (same semantics:
// the caller owns a reference); CivetWeb 1.15 looks the old name up as a symbol.
#undef SSL_get_peer_certificate
extern "C" X509* SSL_get_peer_certificate(const SSL* ssl);
extern "C" X509* SSL_get_peer_certificate(const SSL* ssl) { return SSL_get1_peer_certificate(ssl); }
