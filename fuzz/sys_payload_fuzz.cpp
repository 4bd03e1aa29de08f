// $SYS messages as the broker sends them, fed to BrokerStats. The input is a sequence of
// records: a selector byte (which topic, live or retained, or a reconnect), a length byte and
// that many payload bytes. Properties:
//  - ParseSysCount accepts exactly the non-empty all-digit payloads that fit 64 bits, with their
//    decimal value; ParseUptime exactly "<count> seconds";
//  - malformed() counts exactly the rejected payloads of topics the exporter uses;
//  - nothing is served before a live uptime on the current connection, then exactly the values
//    last accepted since the reconnect, and a start time that is not in the future.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker_stats.h"
#include "fuzz_check.h"

namespace {

using billing::exporter::BrokerValue;

constexpr std::string_view kTopics[] = {
    "$SYS/broker/publish/messages/received",
    "$SYS/broker/publish/messages/sent",
    "$SYS/broker/publish/messages/dropped",
    "$SYS/broker/publish/bytes/received",
    "$SYS/broker/publish/bytes/sent",
    "$SYS/broker/bytes/received",
    "$SYS/broker/bytes/sent",
    "$SYS/broker/clients/connected",
    "$SYS/broker/subscriptions/count",
    "$SYS/broker/retained messages/count",
};
constexpr std::size_t kKnown = std::size(kTopics);
constexpr std::string_view kUptime = "$SYS/broker/uptime";

// Reference decimal parser, written out digit by digit.
std::optional<std::uint64_t> Decimal(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  billing::exporter::BrokerStats stats;
  constexpr double kNow = 1'800'000'000;
  std::uint64_t expected_malformed = 0;
  std::vector<std::optional<std::uint64_t>> expected(kKnown);
  bool confirmed = false;
  std::size_t at = 0;
  while (at + 2 <= size) {
    const std::uint8_t selector = data[at];
    const std::size_t length = std::min<std::size_t>(data[at + 1], size - at - 2);
    const std::string_view payload(reinterpret_cast<const char*>(data) + at + 2, length);
    at += 2 + length;
    const bool live = (selector & 0x80) == 0;
    const std::size_t which = (selector & 0x7F) % (kKnown + 3);

    const auto count = billing::exporter::ParseSysCount(payload);
    FUZZ_CHECK(count == Decimal(payload), "a $SYS count is exactly a 64-bit decimal");
    const auto uptime = billing::exporter::ParseUptime(payload);
    constexpr std::string_view kSuffix = " seconds";
    const bool has_suffix = payload.size() > kSuffix.size() &&
                            payload.substr(payload.size() - kSuffix.size()) == kSuffix;
    FUZZ_CHECK(uptime == (has_suffix ? Decimal(payload.substr(0, payload.size() - kSuffix.size()))
                                     : std::nullopt),
               "an uptime is exactly \"<count> seconds\"");

    if (which < kKnown) {
      FUZZ_CHECK(billing::exporter::SysTopicValue(kTopics[which]).has_value(), "a used topic");
      stats.OnSysMessage(kTopics[which], payload, live, kNow);
      if (count) {
        expected[which] = count;
      } else {
        ++expected_malformed;
      }
    } else if (which == kKnown) {
      stats.OnSysMessage(kUptime, payload, live, kNow);
      if (!uptime) ++expected_malformed;
      if (uptime && live) confirmed = true;
    } else if (which == kKnown + 1) {
      const std::string topic = "$SYS/broker/" + std::string(payload);
      if (!billing::exporter::SysTopicValue(topic)) {
        stats.OnSysMessage(topic, payload, live, kNow);  // ignored: not counted as malformed
      }
    } else {
      stats.Forget();
      confirmed = false;
      for (auto& value : expected) value.reset();
    }
    FUZZ_CHECK(stats.malformed() == expected_malformed, "malformed payloads counted exactly");
  }

  const auto families = stats.Families();
  if (!confirmed) {
    FUZZ_CHECK(families.empty(), "nothing served before a live uptime on this connection");
    return 0;
  }
  std::vector<double> served;
  for (std::size_t i = 0; i < kKnown; ++i) {
    if (expected[i]) served.push_back(static_cast<double>(*expected[i]));
  }
  FUZZ_CHECK(families.size() == served.size() + 1, "every accepted value and the start time");
  for (std::size_t i = 0; i < served.size(); ++i) {
    const auto& metric = families[i].metric.at(0);
    const double value = families[i].type == prometheus::MetricType::Counter ? metric.counter.value
                                                                             : metric.gauge.value;
    FUZZ_CHECK(value == served[i], "the value last accepted since the reconnect");
  }
  FUZZ_CHECK(families.back().metric.at(0).gauge.value <= kNow, "a start time not in the future");
  return 0;
}
