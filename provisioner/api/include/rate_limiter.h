// A token bucket per client address, for signup: `burst` requests at once, refilled at
// `per_minute`. Pure (the caller passes the time), thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

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

/// An IPv4 or IPv6 network ("10.0.0.0/8", "fd00::/8"; a bare address is a /32 or /128).
struct Network {
  std::array<unsigned char, 16> address{};  // IPv4 as ::ffff:a.b.c.d
  int prefix_bits = 0;                      // of the 128
};
std::optional<Network> ParseNetwork(const std::string& text);

/// Who a request comes from, for rate limiting: the peer address, unless the peer is a trusted
/// proxy (an ingress controller), in which case the right-most X-Forwarded-For address that is
/// not itself a trusted proxy. IPv6 clients are grouped by /64 (one site holds a whole /64).
std::string ClientKey(const std::string& peer, const std::string& forwarded_for,
                      const std::vector<Network>& trusted_proxies);

}  // namespace billing::provisioner
