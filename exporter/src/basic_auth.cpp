#include "basic_auth.h"

#include <crypt.h>
#include <openssl/sha.h>

#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>

#include "billing/common/base64.h"
#include "billing/common/compare.h"

namespace billing::exporter {
namespace {

// The remembered headers are bounded: past this many distinct valid headers (each a user and a
// password that verified), the set starts again.
constexpr std::size_t kMaxRemembered = 64;

std::optional<std::pair<std::string, std::string>> UserAndPassword(const char* authorization) {
  if (authorization == nullptr) return std::nullopt;
  std::string_view value(authorization);
  constexpr std::string_view kScheme = "Basic ";
  if (value.size() <= kScheme.size() || value.substr(0, kScheme.size()) != kScheme)
    return std::nullopt;
  value.remove_prefix(kScheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  const auto decoded = common::Base64Decode(value);
  if (!decoded) return std::nullopt;
  const auto colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(decoded->substr(0, colon), decoded->substr(colon + 1));
}

bool BcryptMatches(std::string_view password, const std::string& hash) {
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on a CivetWeb worker's stack
  const char* result = crypt_r(std::string(password).c_str(), hash.c_str(), data.get());
  // libcrypt answers a string starting with '*' on failure, never the hash.
  return result != nullptr && result[0] != '*' && common::ConstantTimeEquals(result, hash);
}

}  // namespace

BasicAuth::BasicAuth(std::map<std::string, std::string> bcrypt_users, std::string plain_user,
                     std::string plain_password)
    : bcrypt_users_(std::move(bcrypt_users)),
      plain_user_(std::move(plain_user)),
      plain_password_(std::move(plain_password)) {
  if (!bcrypt_users_.empty()) {
    // A hash of the same cost as the first user's, of a password nobody knows.
    std::array<char, CRYPT_GENSALT_OUTPUT_SIZE> salt{};
    const auto& sample = bcrypt_users_.begin()->second;
    const unsigned long cost = std::stoul(sample.substr(4, 2));
    if (crypt_gensalt_rn(sample.substr(0, 4).c_str(), cost, nullptr, 0, salt.data(),
                         static_cast<int>(salt.size())) == nullptr) {
      throw std::runtime_error("basic auth: libcrypt cannot make a bcrypt salt");
    }
    auto data = std::make_unique<crypt_data>();
    const char* dummy = crypt_r("unknown user", salt.data(), data.get());
    if (dummy == nullptr || dummy[0] == '*')
      throw std::runtime_error("basic auth: libcrypt has no bcrypt");
    dummy_hash_ = dummy;
  }
}

bool BasicAuth::Verify(std::string_view user, std::string_view password) const {
  if (!plain_user_.empty() && common::ConstantTimeEquals(user, plain_user_)) {
    return common::ConstantTimeEquals(password, plain_password_);
  }
  if (bcrypt_users_.empty()) return false;
  const auto it = bcrypt_users_.find(std::string(user));
  const std::lock_guard bcrypt_lock(bcrypt_mutex_);
  {
    const std::lock_guard lock(mutex_);
    ++bcrypt_runs_;
  }
  if (it == bcrypt_users_.end()) {
    BcryptMatches(password, dummy_hash_);  // the same work as for a known user
    return false;
  }
  return BcryptMatches(password, it->second);
}

bool BasicAuth::Authorized(const char* authorization) const {
  if (!enabled()) return true;
  if (authorization == nullptr) return false;
  Digest digest{};
  SHA256(reinterpret_cast<const unsigned char*>(authorization), std::strlen(authorization),
         digest.data());
  {
    const std::lock_guard lock(mutex_);
    if (verified_.count(digest)) return true;
  }
  const auto credentials = UserAndPassword(authorization);
  if (!credentials || !Verify(credentials->first, credentials->second)) return false;
  const std::lock_guard lock(mutex_);
  if (verified_.size() >= kMaxRemembered) verified_.clear();
  verified_.insert(digest);
  return true;
}

std::size_t BasicAuth::bcrypt_runs() const {
  const std::lock_guard lock(mutex_);
  return bcrypt_runs_;
}

}  // namespace billing::exporter
