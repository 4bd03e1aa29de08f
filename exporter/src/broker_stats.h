// The broker's own totals from its $SYS tree, kept exactly as the broker reports them. Written on
// the MQTT delivery thread, read by the sampler; lock-free.
#pragma once

#include <prometheus/metric_family.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace billing::exporter {

enum class BrokerValue : std::size_t {
  kPublishMessagesReceived,
  kPublishMessagesSent,
  kPublishMessagesDropped,
  kPublishBytesReceived,
  kPublishBytesSent,
  kBytesReceived,
  kBytesSent,
  kClientsConnected,
  kSubscriptions,
  kRetainedMessages,
  kCount,
};

/// The $SYS topic each value comes from, or nullopt if the exporter does not use the topic.
std::optional<BrokerValue> SysTopicValue(std::string_view topic);

/// Parses a $SYS counter payload: a non-negative decimal integer and nothing else.
std::optional<std::uint64_t> ParseSysCount(std::string_view payload);

/// Parses $SYS/broker/uptime: "<seconds> seconds".
std::optional<std::uint64_t> ParseUptime(std::string_view payload);

class BrokerStats {
 public:
  /// Handles one $SYS message; counts and ignores a malformed payload. `live` is false for
  /// retained copies delivered on subscribe, whose uptime is up to one sys_interval old.
  void OnSysMessage(std::string_view topic, std::string_view payload, bool live, double now_unix);
  /// A new connection, or the old one is gone: what we knew may belong to a broker that has
  /// restarted since.
  void Forget();

  /// Families for the values seen on the current connection. Nothing until a live uptime has
  /// given the start time on this connection: a counter must never be served beside the start
  /// time of another broker lifetime, or a consumer would see one reset twice.
  std::vector<prometheus::MetricFamily> Families() const;
  std::uint64_t malformed() const { return malformed_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kValues = static_cast<std::size_t>(BrokerValue::kCount);
  std::array<std::atomic<std::uint64_t>, kValues> values_{};
  std::array<std::atomic<bool>, kValues> present_{};
  std::atomic<double> start_time_{0};         // 0: unknown
  std::atomic<bool> start_confirmed_{false};  // a live uptime arrived on this connection
  std::uint64_t last_uptime_ = 0;             // writer only
  double last_seen_ = 0;                      // writer only: time of the last $SYS message
  double previous_connection_last_seen_ = 0;  // writer only: last_seen_ of the previous connection
  std::atomic<bool> new_connection_{false};   // set by Forget(), taken by the next message
  static constexpr double kEstimateSlackSeconds = 2;
  std::atomic<std::uint64_t> malformed_{0};
};

}  // namespace billing::exporter
