#include "rate_limiter.h"

#include <algorithm>

namespace billing::provisioner {

RateLimiter::RateLimiter(double per_minute, double burst, std::size_t max_clients)
    : per_second_(per_minute / 60.0), burst_(std::max(burst, 1.0)), max_clients_(max_clients) {}

bool RateLimiter::Allow(const std::string& client, double now_seconds,
                        double* retry_after_seconds) {
  std::lock_guard lock(mutex_);
  if (buckets_.size() >= max_clients_ && !buckets_.count(client)) {
    // Forget clients whose buckets are full again: they are indistinguishable from new ones.
    std::erase_if(buckets_, [&](const auto& entry) {
      return entry.second.tokens + (now_seconds - entry.second.updated) * per_second_ >= burst_;
    });
    if (buckets_.size() >= max_clients_) {  // memory stays bounded under a spread-out flood
      if (retry_after_seconds) *retry_after_seconds = 1.0 / std::max(per_second_, 1e-6);
      return false;
    }
  }
  auto [it, inserted] = buckets_.try_emplace(client, Bucket{burst_, now_seconds});
  Bucket& bucket = it->second;
  bucket.tokens =
      std::min(burst_, bucket.tokens + std::max(0.0, now_seconds - bucket.updated) * per_second_);
  bucket.updated = std::max(bucket.updated, now_seconds);
  if (bucket.tokens >= 1.0) {
    bucket.tokens -= 1.0;
    return true;
  }
  if (retry_after_seconds) {
    *retry_after_seconds = per_second_ > 0 ? (1.0 - bucket.tokens) / per_second_ : 3600.0;
  }
  return false;
}

}  // namespace billing::provisioner
