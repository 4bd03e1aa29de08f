#include "login_throttle.h"

#include <algorithm>
#include <iterator>

namespace billing::provisioner {

LoginThrottle::LoginThrottle(std::size_t max_failures, double window_seconds, std::size_t max_keys)
    : max_failures_(std::max<std::size_t>(max_failures, 1)),
      window_seconds_(window_seconds),
      max_keys_(max_keys) {}

void LoginThrottle::Expire(std::deque<double>& failures, double now_seconds) const {
  while (!failures.empty() && failures.front() <= now_seconds - window_seconds_) {
    failures.pop_front();
  }
}

std::optional<double> LoginThrottle::RetryAfter(const std::string& key, double now_seconds) {
  const std::lock_guard lock(mutex_);
  const auto it = failures_.find(key);
  if (it == failures_.end()) return std::nullopt;
  Expire(it->second, now_seconds);
  if (it->second.size() < max_failures_) return std::nullopt;
  return it->second.front() + window_seconds_ - now_seconds;
}

void LoginThrottle::RecordFailure(const std::string& key, double now_seconds) {
  const std::lock_guard lock(mutex_);
  if (failures_.size() >= max_keys_ && !failures_.contains(key)) {
    // Bounded memory: drop keys whose failures have all left the window; if none has, the
    // table is full of live attackers and one more is not tracked rather than growing.
    for (auto it = failures_.begin(); it != failures_.end();) {
      Expire(it->second, now_seconds);
      it = it->second.empty() ? failures_.erase(it) : std::next(it);
    }
    if (failures_.size() >= max_keys_) return;
  }
  auto& failures = failures_[key];
  Expire(failures, now_seconds);
  failures.push_back(now_seconds);
  // Only the newest max_failures_ matter for the refusal.
  while (failures.size() > max_failures_) failures.pop_front();
}

}  // namespace billing::provisioner
