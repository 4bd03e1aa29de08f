// Who may read /metrics: HTTP basic auth against the web configuration's bcrypt-hashed users
// (or the one plain user of web.basic_auth / EXPORTER_BASIC_AUTH_*). Verification is bcrypt
// (libcrypt), deliberately slow; an Authorization header that verified once is remembered by its
// SHA-256, so a scrape every few seconds costs one hash lookup, not one bcrypt run.
#pragma once

#include <array>
#include <cstddef>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace billing::exporter {

class BasicAuth {
 public:
  /// No users at all: every request is authorized.
  BasicAuth() = default;
  /// `bcrypt_users`: user -> bcrypt hash; `plain_user`/`plain_password`: both empty or both set.
  BasicAuth(std::map<std::string, std::string> bcrypt_users, std::string plain_user,
            std::string plain_password);

  bool enabled() const { return !bcrypt_users_.empty() || !plain_user_.empty(); }

  /// True if the Authorization header's value (nullptr: none) names a user with the right
  /// password. Thread-safe. An unknown user costs a bcrypt run too, so time does not tell which
  /// user names exist.
  bool Authorized(const char* authorization) const;

  /// How many bcrypt verifications ran (the cache hits are not counted); for tests.
  std::size_t bcrypt_runs() const;

 private:
  using Digest = std::array<unsigned char, 32>;
  bool Verify(std::string_view user, std::string_view password) const;

  std::map<std::string, std::string> bcrypt_users_;
  std::string plain_user_;
  std::string plain_password_;
  std::string dummy_hash_;  // verified against for unknown users

  mutable std::mutex mutex_;
  mutable std::set<Digest> verified_;  // SHA-256 of Authorization values that verified
  mutable std::size_t bcrypt_runs_ = 0;
  // One bcrypt at a time: a flood of wrong passwords costs one core, never all of them, and
  // scrapes with a remembered header do not wait for it.
  mutable std::mutex bcrypt_mutex_;
};

}  // namespace billing::exporter
