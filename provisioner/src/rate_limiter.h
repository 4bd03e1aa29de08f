// A token bucket per client address, for signup: `burst` requests at once, refilled at
// `per_minute`. Pure (the caller passes the time), thread-safe.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace billing::provisioner {

class RateLimiter {
 public:
  RateLimiter(double per_minute, double burst, std::size_t max_clients = 100000);

  /// Takes one token for `client` at `now_seconds` (any monotonic clock); false when none is left.
  /// `retry_after_seconds` (if given) is set to when the next token will be there.
  bool Allow(const std::string& client, double now_seconds, double* retry_after_seconds = nullptr);

 private:
  struct Bucket {
    double tokens;
    double updated;
  };
  const double per_second_;
  const double burst_;
  const std::size_t max_clients_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace billing::provisioner
