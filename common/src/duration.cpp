#include "billing/common/duration.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <utility>

namespace billing::common {
namespace {

constexpr std::array<std::pair<std::string_view, std::int64_t>, 4> kUnitsMs = {{
    {"ms", 1},
    {"s", 1000},
    {"m", 60 * 1000},
    {"h", 60 * 60 * 1000},
}};

}  // namespace

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::int64_t total_ms = 0;
  while (!text.empty()) {
    std::uint64_t amount = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), amount);
    if (ec != std::errc() || end == text.data()) return std::nullopt;
    text.remove_prefix(static_cast<std::size_t>(end - text.data()));

    std::size_t unit_length = 0;
    while (unit_length < text.size() && text[unit_length] >= 'a' && text[unit_length] <= 'z') {
      ++unit_length;
    }
    const std::string_view unit = text.substr(0, unit_length);
    text.remove_prefix(unit_length);

    std::int64_t unit_ms = 0;
    for (const auto& [name, ms] : kUnitsMs) {
      if (name == unit) unit_ms = ms;
    }
    if (unit_ms == 0) return std::nullopt;
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    if (amount > static_cast<std::uint64_t>(kMax / unit_ms)) return std::nullopt;
    const auto part = static_cast<std::int64_t>(amount) * unit_ms;
    if (total_ms > kMax - part) return std::nullopt;
    total_ms += part;
  }
  return std::chrono::milliseconds(total_ms);
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  std::int64_t ms = duration.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  for (auto it = kUnitsMs.rbegin(); it != kUnitsMs.rend(); ++it) {
    const auto& [name, unit_ms] = *it;
    if (ms >= unit_ms) {
      out += std::to_string(ms / unit_ms);
      out += name;
      ms %= unit_ms;
    }
  }
  return out;
}

}  // namespace billing::common
