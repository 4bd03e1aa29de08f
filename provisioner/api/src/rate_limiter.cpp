#include "rate_limiter.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

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

namespace {

std::optional<std::array<unsigned char, 16>> ParseAddress(const std::string& text, bool& is_v4) {
  std::array<unsigned char, 16> bytes{};
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    is_v4 = true;
    bytes[10] = bytes[11] = 0xff;
    std::memcpy(bytes.data() + 12, &v4, 4);
    return bytes;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    is_v4 = false;
    std::memcpy(bytes.data(), &v6, 16);
    return bytes;
  }
  return std::nullopt;
}

bool Contains(const Network& network, const std::array<unsigned char, 16>& address) {
  for (int bit = 0; bit < network.prefix_bits; ++bit) {
    const int byte = bit / 8;
    const int mask = 0x80 >> (bit % 8);
    if ((network.address[byte] & mask) != (address[byte] & mask)) return false;
  }
  return true;
}

bool Trusted(const std::string& text, const std::vector<Network>& trusted) {
  bool is_v4 = false;
  const auto address = ParseAddress(text, is_v4);
  if (!address) return false;
  return std::any_of(trusted.begin(), trusted.end(),
                     [&](const Network& n) { return Contains(n, *address); });
}

std::string Trim(std::string text) {
  const auto first = text.find_first_not_of(" \t");
  const auto last = text.find_last_not_of(" \t");
  return first == std::string::npos ? "" : text.substr(first, last - first + 1);
}

}  // namespace

std::optional<Network> ParseNetwork(const std::string& text) {
  const auto slash = text.find('/');
  bool is_v4 = false;
  const auto address = ParseAddress(text.substr(0, slash), is_v4);
  if (!address) return std::nullopt;
  Network network;
  network.address = *address;
  const int max_bits = is_v4 ? 32 : 128;
  int bits = max_bits;
  if (slash != std::string::npos) {
    const auto digits = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (ec != std::errc() || end != digits.data() + digits.size() || bits < 0 || bits > max_bits) {
      return std::nullopt;
    }
  }
  network.prefix_bits = is_v4 ? bits + 96 : bits;
  return network;
}

std::string ClientKey(const std::string& peer, const std::string& forwarded_for,
                      const std::vector<Network>& trusted_proxies) {
  std::string client = peer;
  if (Trusted(peer, trusted_proxies) && !forwarded_for.empty()) {
    // Right to left: each trusted proxy appended the address it got the request from.
    std::size_t end = forwarded_for.size();
    while (true) {
      const auto comma = forwarded_for.rfind(',', end == 0 ? 0 : end - 1);
      const auto start = comma == std::string::npos || comma >= end ? 0 : comma + 1;
      const auto hop = Trim(forwarded_for.substr(start, end - start));
      bool is_v4 = false;
      if (!ParseAddress(hop, is_v4)) break;  // garbage: keep the last address we could trust
      client = hop;
      if (!Trusted(hop, trusted_proxies) || start == 0) break;
      end = start - 1;
    }
  }
  bool is_v4 = false;
  auto address = ParseAddress(client, is_v4);
  if (!address || is_v4) return client;
  std::fill(address->begin() + 8, address->end(), 0);  // the /64
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, address->data(), text, sizeof text);
  return std::string(text) + "/64";
}

}  // namespace billing::provisioner
