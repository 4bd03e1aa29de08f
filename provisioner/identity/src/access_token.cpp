#include "access_token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <array>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "billing/common/base64.h"
#include "billing/common/compare.h"

namespace billing::provisioner {
namespace {

// A token is a few hundred bytes; the bound keeps a hostile header from costing much.
constexpr std::size_t kMaxTokenBytes = 4096;

std::string HmacSha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int size = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(),
           &size) == nullptr) {
    throw std::runtime_error("OpenSSL HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<const char*>(mac.data()), size);
}

// Only the URL-safe alphabet without padding: one encoding per token, nothing to smuggle.
bool IsBase64UrlText(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string IssueAccessToken(const AccessClaims& claims, std::string_view key) {
  if (key.size() < kMinAccessTokenKeyBytes) {
    throw std::invalid_argument("access token key: shorter than 32 bytes");
  }
  const nlohmann::ordered_json header = {{"alg", "HS256"}, {"typ", "JWT"}};
  const nlohmann::ordered_json payload = {{"sub", claims.subject},
                                          {"aud", claims.audience},
                                          {"iat", claims.issued_at},
                                          {"exp", claims.expires_at}};
  std::string payload_text;
  try {
    payload_text = payload.dump();
  } catch (const nlohmann::json::type_error&) {
    throw std::invalid_argument("access token: a claim is not valid UTF-8");
  }
  const std::string signing_input =
      common::Base64UrlEncode(header.dump()) + "." + common::Base64UrlEncode(payload_text);
  return signing_input + "." + common::Base64UrlEncode(HmacSha256(key, signing_input));
}

Result<AccessClaims> VerifyAccessToken(std::string_view token, std::string_view key,
                                       std::string_view audience, std::int64_t now) {
  if (key.size() < kMinAccessTokenKeyBytes) return Error{"access token: no usable key"};
  if (token.size() > kMaxTokenBytes) return Error{"access token: too long"};
  const auto first = token.find('.');
  const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return Error{"access token: not three base64url parts"};
  }
  const auto header_part = token.substr(0, first);
  const auto payload_part = token.substr(first + 1, second - first - 1);
  const auto signature_part = token.substr(second + 1);
  if (!IsBase64UrlText(header_part) || !IsBase64UrlText(payload_part) ||
      !IsBase64UrlText(signature_part)) {
    return Error{"access token: not three base64url parts"};
  }
  const auto header_text = common::Base64Decode(header_part);
  if (!header_text) return Error{"access token: header is not base64url"};
  const auto header = nlohmann::json::parse(*header_text, nullptr, false);
  // The algorithm is fixed by the server, never chosen by the token: "none" or anything else
  // is refused before the signature is looked at.
  if (!header.is_object() || !header.contains("alg") || header["alg"] != "HS256") {
    return Error{"access token: algorithm is not HS256"};
  }
  const auto signature = common::Base64Decode(signature_part);
  const auto expected =
      HmacSha256(key, std::string(token.substr(0, second)));  // header.payload as sent
  if (!signature || !common::ConstantTimeEquals(*signature, expected)) {
    return Error{"access token: bad signature"};
  }
  const auto payload_text = common::Base64Decode(payload_part);
  if (!payload_text) return Error{"access token: claims are not base64url"};
  const auto payload = nlohmann::json::parse(*payload_text, nullptr, false);
  if (!payload.is_object() || !payload.contains("sub") || !payload["sub"].is_string() ||
      !payload.contains("aud") || !payload["aud"].is_string() || !payload.contains("exp") ||
      !payload["exp"].is_number_integer() || !payload.contains("iat") ||
      !payload["iat"].is_number_integer()) {
    return Error{"access token: claims sub, aud, iat and exp are required"};
  }
  AccessClaims claims;
  claims.subject = payload["sub"].get<std::string>();
  claims.audience = payload["aud"].get<std::string>();
  claims.issued_at = payload["iat"].get<std::int64_t>();
  claims.expires_at = payload["exp"].get<std::int64_t>();
  if (claims.audience != audience) return Error{"access token: wrong audience"};
  if (now >= claims.expires_at) return Error{"access token: expired"};
  return claims;
}

std::string Sha256Hex(std::string_view text) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(digest.size() * 2);
  for (const unsigned char byte : digest) {
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0xf]);
  }
  return out;
}

}  // namespace billing::provisioner
