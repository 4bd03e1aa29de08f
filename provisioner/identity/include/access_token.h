// access_token: the customers' short-lived access tokens, compact JWS with HS256 (RFC 7519),
// header {"alg":"HS256","typ":"JWT"}, claims {"sub","aud","iat","exp"}. Pure: the key and the
// time are passed in. Also the SHA-256 by which refresh tokens are stored.
//
// Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "billing/provisioner/result.h"

namespace billing::provisioner {

/// Shorter HMAC keys make the tokens guessable offline (RFC 7518 section 3.2: at least the
/// hash's size).
inline constexpr std::size_t kMinAccessTokenKeyBytes = 32;

struct AccessClaims {
  std::string subject;          // "sub": the customer id
  std::string audience;         // "aud": "customer"
  std::int64_t issued_at = 0;   // "iat", Unix seconds
  std::int64_t expires_at = 0;  // "exp"
};

/// Signs `claims` with HMAC-SHA256 under `key`. Throws std::invalid_argument if the key is
/// shorter than kMinAccessTokenKeyBytes or a claim is not valid UTF-8.
std::string IssueAccessToken(const AccessClaims& claims, std::string_view key);

/// Checks the signature (in constant time), that the header says HS256 (anything else, "none"
/// included, is refused), the audience and that `now` is before "exp"; the error says which.
Result<AccessClaims> VerifyAccessToken(std::string_view token, std::string_view key,
                                       std::string_view audience, std::int64_t now);

/// Lower-case hex SHA-256 of `text` (refresh tokens are stored only as this).
std::string Sha256Hex(std::string_view text);

}  // namespace billing::provisioner
