// Capped exponential backoff with full jitter, for reconnecting to a source
// that went away.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace billing::exporter {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
          std::uint64_t seed = std::random_device{}())
      : initial_(initial), max_(max), rng_(seed) {}

  /// The wait before the next attempt: uniform in [ceiling/2, ceiling], where
  /// the ceiling doubles with every consecutive failure up to `max`. Jitter
  /// keeps many exporters from reconnecting to a restarted server in lockstep.
  std::chrono::milliseconds NextDelay() {
    auto ceiling = initial_;
    for (unsigned i = 0; i < failures_ && ceiling < max_; ++i) ceiling *= 2;
    if (ceiling > max_) ceiling = max_;
    ++failures_;
    std::uniform_int_distribution<std::int64_t> jitter(ceiling.count() / 2, ceiling.count());
    return std::chrono::milliseconds(jitter(rng_));
  }
  void Reset() { failures_ = 0; }
  unsigned failures() const { return failures_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::mt19937_64 rng_;
  unsigned failures_ = 0;
};

}  // namespace billing::exporter
