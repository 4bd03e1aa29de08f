#include "billing/common/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace billing::common {

void Log(LogLevel level, std::string_view component, std::string_view message) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);

  std::string line;
  line.reserve(96 + message.size());
  line += "ts=";
  line += stamp;
  line += '.';
  line += std::to_string(1000 + millis).substr(1);
  line += "Z level=";
  line += level == LogLevel::kInfo ? "info" : level == LogLevel::kWarn ? "warn" : "error";
  line += " component=";
  line += component;
  line += " msg=\"";
  for (char c : message) {
    if (c == '"' || c == '\\') line += '\\';
    line += c == '\n' ? ' ' : c;
  }
  line += "\"\n";
  // One fwrite per line keeps lines from different threads whole.
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace billing::common
