#include "plugin_usage.h"

#include "billing/common/metric_names.h"

namespace billing::exporter {
namespace {

prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type) {
  return prometheus::MetricFamily{name, help, type, {}};
}

void AddCounter(prometheus::MetricFamily& family, double value,
                std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  family.metric.push_back(std::move(m));
}

double Seconds(std::uint64_t ms) { return static_cast<double>(ms) / 1000.0; }

}  // namespace

bool ReplacedByPlugin(std::string_view name) {
  return name == names::kBrokerPublishReceived || name == names::kBrokerBytesReceived ||
         name == names::kBrokerStartTime;
}

std::vector<prometheus::MetricFamily> PluginFamilies(const plugin::Snapshot& s,
                                                     const PluginSeriesOptions& options) {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families;
  auto received = Family(names::kBrokerPublishReceived,
                         "PUBLISH messages the broker received, retained ones included, counted "
                         "by the billing plugin since the broker started.",
                         MetricType::Counter);
  AddCounter(received, static_cast<double>(s.total.messages));
  families.push_back(std::move(received));
  auto bytes = Family(names::kBrokerBytesReceived,
                      "Payload bytes of the PUBLISH messages the broker received, counted by the "
                      "billing plugin since the broker started.",
                      MetricType::Counter);
  AddCounter(bytes, static_cast<double>(s.total.payload_bytes));
  families.push_back(std::move(bytes));
  auto units = Family(names::kMqttMessageUnits,
                      "Metering units of the PUBLISH messages received: ceil((payload + topic "
                      "bytes) / 5120), at least 1 each, since the broker started.",
                      MetricType::Counter);
  AddCounter(units, static_cast<double>(s.total.units));
  families.push_back(std::move(units));
  auto connected = Family(names::kMqttConnectionSeconds,
                          "Seconds clients were connected to the broker (every connection, open "
                          "ones up to the snapshot), since the broker started.",
                          MetricType::Counter);
  AddCounter(connected, Seconds(s.total.connection_ms));
  families.push_back(std::move(connected));
  {
    prometheus::ClientMetric start;
    start.gauge.value = static_cast<double>(s.broker_start_unix_s);
    families.push_back(prometheus::MetricFamily{
        names::kBrokerStartTime,
        "Unix time the broker started (the billing plugin's start); a change marks a counter "
        "reset.",
        MetricType::Gauge,
        {start}});
  }

  auto messages = Family(names::kMqttMessages,
                         "PUBLISH messages the broker received per topic group since it started "
                         "(billing plugin).",
                         MetricType::Counter);
  auto payload = Family(names::kMqttPayloadBytes,
                        "Payload bytes the broker received per topic group since it started "
                        "(billing plugin).",
                        MetricType::Counter);
  for (const auto& g : s.groups) {
    const std::string group = g.other ? "other" : g.group;
    AddCounter(messages, static_cast<double>(g.usage.messages), {{"topic_group", group}});
    AddCounter(payload, static_cast<double>(g.usage.payload_bytes), {{"topic_group", group}});
  }
  if (!messages.metric.empty()) {
    families.push_back(std::move(messages));
    families.push_back(std::move(payload));
  }

  if (options.per_client) {
    auto c_messages = Family(names::kMqttClientMessages,
                             "PUBLISH messages received from each client since the broker started.",
                             MetricType::Counter);
    auto c_bytes = Family(names::kMqttClientBytes,
                          "Payload bytes received from each client since the broker started.",
                          MetricType::Counter);
    auto c_units = Family(names::kMqttClientUnits,
                          "Metering units received from each client since the broker started.",
                          MetricType::Counter);
    auto c_seconds =
        Family(names::kMqttClientConnectionSeconds,
               "Seconds each client was connected since the broker started.", MetricType::Counter);
    // Beyond the cap (and the plugin's own overflow record) everything is summed into
    // client_id="": the broker never gives a client an empty id, so it names no real client.
    auto add_client = [&](const std::string& client_id, const std::string& username,
                          const plugin::Usage& usage) {
      const std::vector<prometheus::ClientMetric::Label> labels{{"client_id", client_id},
                                                                {"username", username}};
      AddCounter(c_messages, static_cast<double>(usage.messages), labels);
      AddCounter(c_bytes, static_cast<double>(usage.payload_bytes), labels);
      AddCounter(c_units, static_cast<double>(usage.units), labels);
      AddCounter(c_seconds, Seconds(usage.connection_ms), labels);
    };
    plugin::Usage rest;
    bool have_rest = false;
    std::size_t named = 0;
    for (const auto& c : s.clients) {
      if (c.other || named >= options.max_clients) {
        rest += c.usage;
        have_rest = true;
        continue;
      }
      ++named;
      add_client(c.client_id, c.username, c.usage);
    }
    if (have_rest) add_client("", "", rest);
    if (!c_messages.metric.empty()) {
      families.push_back(std::move(c_messages));
      families.push_back(std::move(c_bytes));
      families.push_back(std::move(c_units));
      families.push_back(std::move(c_seconds));
    }
  }
  return families;
}

std::string PluginUsage::OnPayload(std::string_view payload) {
  auto decoded = plugin::DecodeSnapshot(payload);
  if (!decoded.snapshot) return decoded.error;
  std::lock_guard lock(mutex_);
  // Within one broker lifetime the counts only grow; an older copy (the broker restored a retained
  // snapshot from its persistence file) must not make them go back.
  if (latest_ && latest_->broker_start_unix_s == decoded.snapshot->broker_start_unix_s &&
      latest_->sequence > decoded.snapshot->sequence) {
    fresh_ = true;
    return "";
  }
  latest_ = std::make_shared<const plugin::Snapshot>(std::move(*decoded.snapshot));
  fresh_ = true;
  received_at_ = std::chrono::steady_clock::now();
  return "";
}

void PluginUsage::Forget() {
  std::lock_guard lock(mutex_);
  fresh_ = false;
}

std::shared_ptr<const plugin::Snapshot> PluginUsage::Latest() const {
  std::lock_guard lock(mutex_);
  return fresh_ ? latest_ : nullptr;
}

std::chrono::steady_clock::time_point PluginUsage::LatestReceivedAt() const {
  std::lock_guard lock(mutex_);
  return received_at_;
}

}  // namespace billing::exporter
