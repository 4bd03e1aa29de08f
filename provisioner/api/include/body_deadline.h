// api: when to give up on a request body that arrives too slowly. CivetWeb's request timeout
// bounds each read, not the whole body: a client sending a byte every few seconds would hold an
// API worker for as long as it likes. The API reads the body itself and asks this between reads.
// Pure (times are passed in).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace billing::provisioner {

struct BodyLimits {
  /// The whole body must have arrived this long after the headers (PROVISIONER_BODY_TIMEOUT).
  double timeout_seconds = 10;
  /// And on average at least this fast, not counting the first second, in which a client may be
  /// slow to start (PROVISIONER_BODY_MIN_RATE, bytes a second; 0: no minimum rate).
  double min_bytes_per_second = 1024;
};

/// Seconds of a body that its minimum rate does not count.
inline constexpr double kBodyRateGraceSeconds = 1.0;

/// Why reading a body must stop when `received` bytes of it arrived in `elapsed_seconds` since
/// the headers and it is not complete yet, as a message naming the field; nullopt: keep reading.
std::optional<std::string> SlowBodyRefusal(const BodyLimits& limits, double elapsed_seconds,
                                           std::size_t received);

}  // namespace billing::provisioner
