// Loaded (never linked) by billing-exporter before CivetWeb starts TLS; see tls_server.cpp.
// Its SONAME is "libcrypto.so", the name Debian's CivetWeb 1.15 dlopen()s (the unversioned name
// exists only with libssl-dev installed, never in the image): symbol lookups through it reach the
// real libcrypto.so.3 it depends on. It defines one symbol so that it is not an empty library.
#include <openssl/crypto.h>

extern "C" unsigned long billing_civetweb_libcrypto_shim(void);
extern "C" unsigned long billing_civetweb_libcrypto_shim(void) { return OpenSSL_version_num(); }
