// login_throttle: failed logins counted per key (an account, a client address) over a sliding
// window; once `max_failures` are in the window the key is refused until the oldest one leaves
// it. In memory: a restart forgets, and each replica counts on its own. Pure (the caller passes
// the time), thread-safe.
#pragma once

#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace billing::provisioner {

class LoginThrottle {
 public:
  LoginThrottle(std::size_t max_failures, double window_seconds, std::size_t max_keys = 100000);

  /// Seconds until `key` may try again, or nullopt if it may now.
  std::optional<double> RetryAfter(const std::string& key, double now_seconds);
  void RecordFailure(const std::string& key, double now_seconds);

 private:
  void Expire(std::deque<double>& failures, double now_seconds) const;
  const std::size_t max_failures_;
  const double window_seconds_;
  const std::size_t max_keys_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::deque<double>> failures_;
};

}  // namespace billing::provisioner
