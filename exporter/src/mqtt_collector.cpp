#include "mqtt_collector.h"

#include <mqtt/async_client.h>

#include <chrono>

#include "log.h"
#include "metric_names.h"

namespace billing::exporter {
namespace {

constexpr const char* kSysFilter = "$SYS/broker/#";

double NowUnix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

void FailureListener::on_failure(const mqtt::token& token) {
  on_failure_("return code " + std::to_string(token.get_return_code()));
}

MqttCollector::MqttCollector(const MqttConfig& config, std::chrono::milliseconds interval)
    : config_(config),
      interval_(interval),
      ledger_(config.topic_group_patterns, config.topic_group_levels, config.max_topic_groups),
      connect_listener_([this](const std::string& why) { OnConnectFailed(why); }),
      subscribe_listener_([this](const std::string& why) {
        OnConnectionLost("the broker refused a subscription (" + why +
                         "); check the ACL for the exporter's user");
      }),
      backoff_(std::chrono::milliseconds(500), config.reconnect_backoff_max) {
  // No persistence: the broker keeps our session (clean_session=false), not a local file.
  client_ = std::make_unique<mqtt::async_client>(config_.url, config_.client_id,
                                                 mqtt::create_options(MQTTVERSION_3_1_1));
  client_->set_connected_handler([this](const std::string&) { OnConnected(); });
  client_->set_connection_lost_handler(
      [this](const std::string& cause) { OnConnectionLost(cause); });
  client_->set_message_callback([this](mqtt::const_message_ptr message) {
    const auto& topic = message->get_topic_ref();
    const auto& payload = message->get_payload_ref();
    const std::string_view topic_view(topic.data(), topic.length());
    if (topic_view.size() > 5 && topic_view.substr(0, 5) == "$SYS/") {
      broker_.OnSysMessage(topic_view, std::string_view(payload.data(), payload.length()),
                           !message->is_retained(), NowUnix());
    } else {
      ledger_.Count(topic_view, payload.length());
    }
  });
  StartConnect();
}

MqttCollector::~MqttCollector() {
  try {
    if (client_->is_connected())
      client_->disconnect(std::chrono::seconds(2))->wait_for(std::chrono::seconds(3));
  } catch (const std::exception& e) {
    Log(LogLevel::kWarn, name_, std::string("disconnect: ") + e.what());
  }
}

void MqttCollector::StartConnect() {
  if (connecting_.exchange(true)) return;
  subscribed_ = false;
  auto options =
      mqtt::connect_options_builder()
          .clean_session(false)
          .keep_alive_interval(std::chrono::seconds(20))
          .connect_timeout(std::chrono::seconds(10))
          .automatic_reconnect(false)  // reconnects are ours: with backoff, also at start
          .finalize();
  if (!config_.username.empty()) options.set_user_name(config_.username);
  if (!config_.password.empty()) options.set_password(config_.password);
  if (config_.url.rfind("ssl://", 0) == 0 || config_.url.rfind("mqtts://", 0) == 0 ||
      config_.url.rfind("wss://", 0) == 0) {
    auto ssl = mqtt::ssl_options_builder().enable_server_cert_auth(true).verify(true);
    if (!config_.ca_file.empty()) ssl.trust_store(config_.ca_file);
    options.set_ssl(ssl.finalize());
  }
  try {
    client_->connect(options, nullptr, connect_listener_);
  } catch (const std::exception& e) {
    OnConnectFailed(e.what());
  }
}

void MqttCollector::OnConnected() {
  connecting_ = false;
  Log(LogLevel::kInfo, name_, "connected to " + config_.url);
  try {
    // Callbacks must not block, so subscription failures arrive through the listener.
    client_->subscribe(kSysFilter, 0, nullptr, subscribe_listener_);
    for (const auto& filter : config_.topics) {
      const auto full =
          config_.shared_group.empty() ? filter : "$share/" + config_.shared_group + "/" + filter;
      client_->subscribe(full, config_.qos, nullptr, subscribe_listener_);
    }
    subscribed_ = true;
  } catch (const std::exception& e) {
    OnConnectionLost(std::string("subscribe failed: ") + e.what());
  }
}

void MqttCollector::OnConnectionLost(const std::string& cause) {
  subscribed_ = false;
  connecting_ = false;
  broker_.Forget();
  std::lock_guard lock(error_mutex_);
  last_error_ = "connection to " + config_.url + " lost" + (cause.empty() ? "" : ": " + cause);
}

void MqttCollector::OnConnectFailed(const std::string& why) {
  connecting_ = false;
  std::lock_guard lock(error_mutex_);
  last_error_ = "cannot connect to " + config_.url + ": " + why;
}

SampleResult MqttCollector::Sample() {
  const bool connected = client_->is_connected();
  const bool up = connected && subscribed_;
  if (!up && !connecting_) {
    const auto now = std::chrono::steady_clock::now();
    if (connected) {
      // Connected but a subscription was refused: start over, so the next attempt resubscribes.
      try {
        client_->disconnect();
      } catch (const std::exception& e) {
        Log(LogLevel::kWarn, name_, std::string("disconnect: ") + e.what());
      }
    } else if (now >= next_attempt_) {
      next_attempt_ = now + backoff_.NextDelay();
      StartConnect();
    }
  } else if (up) {
    backoff_.Reset();
  }

  SampleResult result;
  prometheus::ClientMetric up_metric;
  up_metric.gauge.value = up ? 1 : 0;
  result.families.push_back(prometheus::MetricFamily{
      names::kMqttUp,
      "1 if the exporter is connected and subscribed to the customer's broker, else 0.",
      prometheus::MetricType::Gauge,
      {up_metric}});
  if (up) {
    for (auto& family : broker_.Families()) result.families.push_back(std::move(family));
  }

  // Counts the exporter owns: from zero with the process, kept while the broker is away.
  prometheus::MetricFamily messages{
      names::kMqttMessages,
      "Messages the exporter received per topic group since it started.",
      prometheus::MetricType::Counter,
      {}};
  prometheus::MetricFamily bytes{
      names::kMqttPayloadBytes,
      "Payload bytes the exporter received per topic group since it started.",
      prometheus::MetricType::Counter,
      {}};
  for (const auto& group : ledger_.Snapshot()) {
    prometheus::ClientMetric m;
    m.label = {{"topic_group", group.group}};
    m.counter.value = static_cast<double>(group.messages);
    messages.metric.push_back(m);
    m.counter.value = static_cast<double>(group.payload_bytes);
    bytes.metric.push_back(std::move(m));
  }
  if (!messages.metric.empty()) {
    result.families.push_back(std::move(messages));
    result.families.push_back(std::move(bytes));
  }
  prometheus::ClientMetric malformed;
  malformed.counter.value = static_cast<double>(broker_.malformed());
  result.families.push_back(
      prometheus::MetricFamily{names::kMqttSysPayloadErrors,
                               "$SYS payloads that could not be parsed and were ignored.",
                               prometheus::MetricType::Counter,
                               {malformed}});

  result.ok = up;
  if (!up) {
    std::lock_guard lock(error_mutex_);
    result.error = last_error_.empty() ? "not connected to " + config_.url : last_error_;
  }
  return result;
}

}  // namespace billing::exporter
