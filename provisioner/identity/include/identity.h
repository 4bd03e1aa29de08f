// identity: password hashes, license keys, generated credentials, customer ids (no network).
// May not depend on: libcurl, libpq/libpqxx, CivetWeb, I/O components; reads only its key file.
//
// Customer passwords (Argon2id), license keys (JWT signed with Ed25519 -> EdDSA or RSA -> RS256),
// generated credentials and customer ids, with OpenSSL and libargon2.
//
// Thread-safety: free functions are reentrant; a LicenseSigner may be shared between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "billing/provisioner/result.h"

namespace billing::provisioner {

/// The cost of an Argon2id hash: what its PHC string records as m, t and p.
struct Argon2Cost {
  std::uint32_t memory_kib = 0;
  std::uint32_t passes = 0;
  std::uint32_t lanes = 0;
};
/// What new hashes cost: OWASP's minimum (m=19 MiB, t=2, p=1).
Argon2Cost CurrentPasswordHashCost();

/// Argon2id in PHC string form ("$argon2id$v=19$m=...,t=...,p=...$salt$hash"), random salt.
/// The clear password is not kept. Throws std::runtime_error only if the CSPRNG or libargon2
/// fails (out of memory).
std::string HashPassword(std::string_view password,
                         const Argon2Cost& cost = CurrentPasswordHashCost());
/// False for a wrong password and for anything that is not an argon2id PHC string.
bool VerifyPassword(const std::string& encoded_hash, std::string_view password);
/// True when the hash was made with less memory or fewer passes than CurrentPasswordHashCost(),
/// another lane count or another Argon2 version, or is not an argon2id PHC string: a successful
/// login then stores a new hash of the password it just verified.
bool PasswordHashNeedsRehash(const std::string& encoded_hash);

/// `bytes` random bytes from OpenSSL's CSPRNG, base64url without padding (URL-safe: fits in a
/// DATABASE_URL without encoding). Throws std::runtime_error if the CSPRNG fails.
std::string RandomToken(std::size_t bytes);

/// Mosquitto 2.0's password-file hash of `password` (what `mosquitto_passwd` writes after
/// "user:"): "$7$<iterations>$<base64 salt>$<base64 hash>", PBKDF2-HMAC-SHA512 over a random
/// 12-byte salt, a 64-byte hash, standard base64 with padding. Throws std::invalid_argument for an
/// empty password or iterations < 1, std::runtime_error if OpenSSL fails.
std::string MosquittoPasswordHash(std::string_view password, int iterations = 101);

struct LicenseClaims {
  std::string customer_id;      // "sub"
  std::string plan;             // "plan"
  std::int64_t issued_at = 0;   // "iat", Unix seconds
  std::int64_t expires_at = 0;  // "exp"
};

/// Signs license keys with the PEM private key from a file. The key stays in memory only.
class LicenseSigner {
 public:
  /// Reads the PEM private key; the error names the file and what is wrong (unreadable, not a
  /// private key, unsupported type) and never contains key material.
  static Result<std::shared_ptr<const LicenseSigner>> FromPemFile(const std::string& path);
  static Result<std::shared_ptr<const LicenseSigner>> FromPem(const std::string& pem);
  ~LicenseSigner();
  LicenseSigner(const LicenseSigner&) = delete;
  LicenseSigner& operator=(const LicenseSigner&) = delete;

  /// "EdDSA" or "RS256".
  const std::string& algorithm() const;
  /// A compact JWS: base64url(header).base64url(claims).base64url(signature), header
  /// {"alg":..., "typ":"JWT"}, claims {"sub","plan","iat","exp","iss":"iotistic-provisioner"}.
  /// Throws std::invalid_argument if customer_id or plan is not valid UTF-8, and
  /// std::runtime_error if OpenSSL cannot sign (out of memory).
  std::string Issue(const LicenseClaims& claims) const;
  /// The public key as PEM (SubjectPublicKeyInfo), for whoever verifies licenses.
  std::string PublicKeyPem() const;

 private:
  struct Impl;
  explicit LicenseSigner(std::unique_ptr<Impl> impl);
  /// `source` names the key in errors ("license key /etc/provisioner/license.pem").
  static Result<std::shared_ptr<const LicenseSigner>> Load(const std::string& pem,
                                                           const std::string& source);
  std::unique_ptr<Impl> impl_;
};

/// Checks a license key's signature against a PEM public key and returns its claims; the error
/// says what is wrong (malformed, bad signature, algorithm mismatch). Does not check expiry.
/// Accepts the same keys as LicenseSigner (Ed25519, RSA of at least 2048 bits) and requires
/// "iss" to be "iotistic-provisioner".
Result<LicenseClaims> VerifyLicense(const std::string& token, const std::string& public_key_pem);

}  // namespace billing::provisioner
