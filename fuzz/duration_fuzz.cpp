// Durations as written in config files ("15s", "1m30s"). Properties:
//  - whatever ParseDuration accepts is non-negative, made only of <digits><unit> pairs, and
//    FormatDuration of it parses back to the same value;
//  - FormatDuration of any non-negative value parses back to it (the input's bytes as a number).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "billing/common/duration.h"
#include "fuzz_check.h"

using billing::common::FormatDuration;
using billing::common::ParseDuration;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (const auto parsed = ParseDuration(text)) {
    FUZZ_CHECK(parsed->count() >= 0, "never negative");
    FUZZ_CHECK(!text.empty() && text.front() >= '0' && text.front() <= '9', "starts with digits");
    FUZZ_CHECK(text.find_first_not_of("0123456789msh") == std::string_view::npos,
               "only digits and units");
    const std::string formatted = FormatDuration(*parsed);
    FUZZ_CHECK(ParseDuration(formatted) == parsed, "the formatted value reads back the same");
  }
  if (size >= sizeof(std::int64_t)) {
    std::int64_t raw = 0;
    std::memcpy(&raw, data, sizeof raw);
    const std::chrono::milliseconds value(raw < 0 ? -(raw + 1) : raw);
    FUZZ_CHECK(ParseDuration(FormatDuration(value)) == value, "any duration formats readably");
  }
  return 0;
}
