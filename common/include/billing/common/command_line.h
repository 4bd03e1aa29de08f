// common: the one command-line convention of both programs. Every flag takes its value as
// `--flag value` or `--flag=value`. Header-only.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace billing::common {

/// `--flag=value` -> ("--flag", "value"); anything else -> (arg, nullopt), whose value, if it
/// takes one, is the next argument.
inline std::pair<std::string, std::optional<std::string>> SplitFlag(const std::string& arg) {
  const auto equals = arg.find('=');
  if (!arg.starts_with("--") || equals == std::string::npos) return {arg, std::nullopt};
  return {arg.substr(0, equals), arg.substr(equals + 1)};
}

}  // namespace billing::common
