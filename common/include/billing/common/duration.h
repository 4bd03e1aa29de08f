// Parsing and printing of durations as written in config files and the
// environment ("15s", "1m30s").
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace billing::common {

/// Parses a Go/Prometheus-style duration: one or more <integer><unit> pairs
/// with unit one of ms, s, m, h (e.g. "500ms", "15s", "1m30s"). Returns nullopt
/// for anything else, including an empty string, a bare number, negative or
/// fractional values and overflow.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

/// The shortest form ParseDuration reads back to the same value ("1m30s",
/// "250ms", "0s").
std::string FormatDuration(std::chrono::milliseconds duration);

}  // namespace billing::common
