#include "broker_stats.h"

#include <charconv>
#include <cmath>

#include "billing/common/metric_names.h"

namespace billing::exporter {
namespace {

struct ValueInfo {
  std::string_view topic;
  const char* metric;
  prometheus::MetricType type;
  const char* help;
};

// Indexed by BrokerValue. "publish/bytes" are PUBLISH payload bytes; "bytes" are everything on the
// wire, protocol overhead included.
constexpr std::array<ValueInfo, static_cast<std::size_t>(BrokerValue::kCount)> kValueInfo = {{
    {"$SYS/broker/publish/messages/received", names::kBrokerPublishReceived,
     prometheus::MetricType::Counter,
     "PUBLISH messages the broker received, as the broker reports it."},
    {"$SYS/broker/publish/messages/sent", names::kBrokerPublishSent,
     prometheus::MetricType::Counter,
     "PUBLISH messages the broker sent, as the broker reports it."},
    {"$SYS/broker/publish/messages/dropped", names::kBrokerPublishDropped,
     prometheus::MetricType::Counter, "PUBLISH messages the broker dropped (queues full)."},
    {"$SYS/broker/publish/bytes/received", names::kBrokerBytesReceived,
     prometheus::MetricType::Counter, "Payload bytes of the PUBLISH messages the broker received."},
    {"$SYS/broker/publish/bytes/sent", names::kBrokerBytesSent, prometheus::MetricType::Counter,
     "Payload bytes of the PUBLISH messages the broker sent."},
    {"$SYS/broker/bytes/received", names::kBrokerNetworkBytesReceived,
     prometheus::MetricType::Counter, "All bytes the broker received, protocol overhead included."},
    {"$SYS/broker/bytes/sent", names::kBrokerNetworkBytesSent, prometheus::MetricType::Counter,
     "All bytes the broker sent, protocol overhead included."},
    {"$SYS/broker/clients/connected", names::kBrokerClientsConnected, prometheus::MetricType::Gauge,
     "Clients connected to the broker."},
    {"$SYS/broker/subscriptions/count", names::kBrokerSubscriptions, prometheus::MetricType::Gauge,
     "Subscriptions on the broker."},
    {"$SYS/broker/retained messages/count", names::kBrokerRetainedMessages,
     prometheus::MetricType::Gauge, "Retained messages held by the broker."},
}};

constexpr std::string_view kUptimeTopic = "$SYS/broker/uptime";

}  // namespace

std::optional<BrokerValue> SysTopicValue(std::string_view topic) {
  for (std::size_t i = 0; i < kValueInfo.size(); ++i) {
    if (kValueInfo[i].topic == topic) return static_cast<BrokerValue>(i);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> ParseSysCount(std::string_view payload) {
  std::uint64_t value = 0;
  const auto* end = payload.data() + payload.size();
  const auto [ptr, ec] = std::from_chars(payload.data(), end, value);
  if (payload.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

std::optional<std::uint64_t> ParseUptime(std::string_view payload) {
  constexpr std::string_view kSuffix = " seconds";
  if (payload.size() <= kSuffix.size() ||
      payload.substr(payload.size() - kSuffix.size()) != kSuffix) {
    return std::nullopt;
  }
  return ParseSysCount(payload.substr(0, payload.size() - kSuffix.size()));
}

void BrokerStats::OnSysMessage(std::string_view topic, std::string_view payload, bool live,
                               double now_unix) {
  if (new_connection_.exchange(false, std::memory_order_relaxed)) {
    // First message since a reconnect: remember when the previous connection last heard the
    // broker, before this one overwrites it.
    previous_connection_last_seen_ = last_seen_;
  }
  last_seen_ = now_unix;
  if (topic == kUptimeTopic) {
    const auto uptime = ParseUptime(payload);
    if (!uptime) {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!live) return;
    // now - uptime over-estimates the start by the message's delay (it shares the connection with
    // all the customer's traffic) plus up to a second of uptime resolution; it never
    // under-estimates it. A broker restart always ends the connection, so within a connection
    // the lifetime is fixed and the smallest estimate is the best. After a reconnect the broker
    // is a new one if its uptime went backwards, or if it started after the last $SYS message the
    // old connection delivered (the old broker was still running then).
    const double estimate = std::floor(now_unix - static_cast<double>(*uptime));
    const double current = start_time_.load(std::memory_order_relaxed);
    const bool first_on_connection = !start_confirmed_.load(std::memory_order_relaxed);
    const bool new_lifetime =
        current == 0 || *uptime < last_uptime_ ||
        (first_on_connection && estimate > previous_connection_last_seen_ - kEstimateSlackSeconds);
    if (new_lifetime || estimate < current) start_time_.store(estimate, std::memory_order_relaxed);
    last_uptime_ = *uptime;
    start_confirmed_.store(true, std::memory_order_release);
    return;
  }
  const auto value = SysTopicValue(topic);
  if (!value) return;  // a $SYS topic we do not export
  const auto count = ParseSysCount(payload);
  if (!count) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto i = static_cast<std::size_t>(*value);
  values_[i].store(*count, std::memory_order_relaxed);
  present_[i].store(true, std::memory_order_release);
}

void BrokerStats::Forget() {
  new_connection_.store(true, std::memory_order_relaxed);
  start_confirmed_.store(false, std::memory_order_relaxed);
  for (auto& present : present_) present.store(false, std::memory_order_relaxed);
}

std::vector<prometheus::MetricFamily> BrokerStats::Families() const {
  std::vector<prometheus::MetricFamily> families;
  if (!start_confirmed_.load(std::memory_order_acquire)) return families;
  for (std::size_t i = 0; i < kValueInfo.size(); ++i) {
    if (!present_[i].load(std::memory_order_acquire)) continue;
    const auto& info = kValueInfo[i];
    prometheus::ClientMetric metric;
    const auto value = static_cast<double>(values_[i].load(std::memory_order_relaxed));
    if (info.type == prometheus::MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
    families.push_back(prometheus::MetricFamily{info.metric, info.help, info.type, {metric}});
  }
  {
    prometheus::ClientMetric metric;
    metric.gauge.value = start_time_.load(std::memory_order_relaxed);
    families.push_back(prometheus::MetricFamily{
        names::kBrokerStartTime,
        "Unix time the broker started (from $SYS/broker/uptime); a change marks a counter reset.",
        prometheus::MetricType::Gauge,
        {metric}});
  }
  return families;
}

}  // namespace billing::exporter
