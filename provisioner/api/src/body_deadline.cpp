#include "body_deadline.h"

#include <cmath>

namespace billing::provisioner {
namespace {

// "10s", "0.5s": what the operator wrote, near enough.
std::string SecondsText(double seconds) {
  const double rounded = std::round(seconds * 10) / 10;
  std::string text = std::to_string(rounded);
  text.erase(text.find_last_not_of('0') + 1);
  if (text.ends_with('.')) text.pop_back();
  return text + "s";
}

}  // namespace

std::optional<std::string> SlowBodyRefusal(const BodyLimits& limits, double elapsed_seconds,
                                           std::size_t received) {
  if (elapsed_seconds >= limits.timeout_seconds) {
    return "body: not complete " + SecondsText(limits.timeout_seconds) +
           " after the headers; send the whole request at once";
  }
  const double counted = elapsed_seconds - kBodyRateGraceSeconds;
  if (limits.min_bytes_per_second > 0 && counted > 0 &&
      static_cast<double>(received) < limits.min_bytes_per_second * counted) {
    return "body: arrived slower than " +
           std::to_string(static_cast<long long>(limits.min_bytes_per_second)) +
           " bytes a second; send the whole request at once";
  }
  return std::nullopt;
}

}  // namespace billing::provisioner
