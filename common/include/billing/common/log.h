// One-line structured logs on stderr: ts=... level=... component=... msg="...".
// Callers must not pass secrets; connection errors go through Scrub() first.
#pragma once

#include <string_view>

namespace billing::common {

enum class LogLevel { kInfo, kWarn, kError };

void Log(LogLevel level, std::string_view component, std::string_view message);

}  // namespace billing::common
