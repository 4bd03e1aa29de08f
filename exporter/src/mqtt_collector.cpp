#include "mqtt_collector.h"

#include <chrono>

#include "billing/common/log.h"
#include "metric_names.h"

namespace billing::exporter {

using billing::common::Log;
using billing::common::LogLevel;
namespace {

constexpr const char* kSysFilter = "$SYS/broker/#";

double NowUnix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool IsTls(const std::string& url) {
  return url.rfind("ssl://", 0) == 0 || url.rfind("mqtts://", 0) == 0 ||
         url.rfind("wss://", 0) == 0;
}

}  // namespace

void ActionListener::on_failure(const mqtt::token& token) {
  // Paho C's codes for a refused CONNECT are the CONNACK return codes (MQTT 3.1.1, 3.2.2.3).
  static constexpr const char* kConnack[] = {"",
                                             "unacceptable protocol version",
                                             "client id rejected",
                                             "server unavailable",
                                             "bad user name or password",
                                             "not authorized"};
  const int code = token.get_return_code();
  std::string why = "return code " + std::to_string(code);
  if (token.get_type() == mqtt::token::Type::CONNECT && code > 0 && code < 6) {
    why += " (" + std::string(kConnack[code]) + ")";
  }
  on_failure_(why);
}

bool UsePersistentSession(const MqttConfig& config) {
  return config.client_id_is_stable && config.shared_group.empty();
}

MqttCollector::MqttCollector(const MqttConfig& config, std::chrono::milliseconds interval)
    : config_(config),
      interval_(interval),
      ledger_(config.topic_group_patterns, config.topic_group_levels, config.max_topic_groups),
      backoff_(std::chrono::milliseconds(500), config.reconnect_backoff_max),
      connect_listener_([] {},
                        [this](const std::string& why) {
                          Fail(State::kDisconnected,
                               "cannot connect to " + config_.url + ": " + why);
                        }),
      subscribe_listener_([this] { OnSubscribed(); },
                          [this](const std::string& why) {
                            Fail(State::kRefused, "the broker refused a subscription (" + why +
                                                      "); check the ACL for the exporter's user");
                          }) {
  // No persistence: when a session is kept, the broker keeps it, not a local file.
  client_ = std::make_unique<mqtt::async_client>(config_.url, config_.client_id,
                                                 mqtt::create_options(MQTTVERSION_3_1_1));
  client_->set_connected_handler([this](const std::string&) { OnConnected(); });
  client_->set_connection_lost_handler([this](const std::string& cause) {
    Fail(State::kDisconnected,
         "connection to " + config_.url + " lost" + (cause.empty() ? "" : ": " + cause));
  });
  client_->set_message_callback([this](mqtt::const_message_ptr message) {
    const auto& topic = message->get_topic_ref();
    const auto& payload = message->get_payload_ref();
    const std::string_view topic_view(topic.data(), topic.length());
    const bool retained = message->is_retained();
    if (topic_view.size() > 5 && topic_view.substr(0, 5) == "$SYS/") {
      broker_.OnSysMessage(topic_view, std::string_view(payload.data(), payload.length()),
                           !retained, NowUnix());
    } else if (!retained) {
      // A retained copy is the broker replaying an old message to a new subscription (on every
      // reconnect); live deliveries carry the flag cleared (MQTT 3.1.1, 3.3.1.3). Only live ones
      // are traffic.
      ledger_.Count(topic_view, payload.length());
    }
  });
  StartConnect();
}

MqttCollector::~MqttCollector() {
  try {
    if (client_->is_connected()) {
      client_->disconnect(std::chrono::seconds(2))->wait_for(std::chrono::seconds(3));
    }
  } catch (const std::exception& e) {
    Log(LogLevel::kWarn, name_, std::string("disconnect: ") + e.what());
  }
  client_.reset();  // before any member a callback could use
}

void MqttCollector::StartConnect() {
  State expected = State::kDisconnected;
  if (!state_.compare_exchange_strong(expected, State::kConnecting)) return;
  auto options =
      mqtt::connect_options_builder()
          .clean_session(!UsePersistentSession(config_))
          .keep_alive_interval(std::chrono::seconds(20))
          .connect_timeout(std::chrono::seconds(10))
          .automatic_reconnect(false)  // reconnects are ours: with backoff, also at start
          .finalize();
  if (!config_.username.empty()) options.set_user_name(config_.username);
  if (!config_.password.empty()) options.set_password(config_.password);
  if (IsTls(config_.url)) {
    auto ssl = mqtt::ssl_options_builder().enable_server_cert_auth(true).verify(true);
    if (!config_.ca_file.empty()) ssl.trust_store(config_.ca_file);
    options.set_ssl(ssl.finalize());
  }
  try {
    client_->connect(options, nullptr, connect_listener_);
  } catch (const std::exception& e) {
    Fail(State::kDisconnected, "cannot connect to " + config_.url + ": " + e.what());
  }
}

void MqttCollector::OnConnected() {
  // Counters read on an earlier connection may belong to a broker that has restarted since.
  broker_.Forget();
  pending_subscriptions_ = static_cast<int>(config_.topics.size()) + 1;
  state_ = State::kSubscribing;
  Log(LogLevel::kInfo, name_, "connected to " + config_.url);
  try {
    // Callbacks must not block, so the outcome of each subscription arrives through the listener.
    client_->subscribe(kSysFilter, 0, nullptr, subscribe_listener_);
    for (const auto& filter : config_.topics) {
      const auto full =
          config_.shared_group.empty() ? filter : "$share/" + config_.shared_group + "/" + filter;
      client_->subscribe(full, config_.qos, nullptr, subscribe_listener_);
    }
  } catch (const std::exception& e) {
    Fail(State::kRefused, std::string("subscribe failed: ") + e.what());
  }
}

void MqttCollector::OnSubscribed() {
  // Up only once the broker acknowledged every subscription: before that, messages may be missed.
  if (--pending_subscriptions_ == 0) {
    State expected = State::kSubscribing;
    state_.compare_exchange_strong(expected, State::kUp);
  }
}

void MqttCollector::Fail(State next, const std::string& error) {
  broker_.Forget();
  state_ = next;
  std::lock_guard lock(error_mutex_);
  last_error_ = error;
}

SampleResult MqttCollector::Sample() {
  const State state = state_.load();
  const bool up = state == State::kUp && client_->is_connected();
  if (state == State::kRefused) {
    // Connected but a subscription was refused: start over, so that the next attempt subscribes.
    try {
      client_->disconnect();
    } catch (const std::exception& e) {
      Log(LogLevel::kWarn, name_, std::string("disconnect: ") + e.what());
    }
    State expected = State::kRefused;
    state_.compare_exchange_strong(expected, State::kDisconnected);
    next_attempt_ = std::chrono::steady_clock::now() + backoff_.NextDelay();
  } else if (state == State::kDisconnected && std::chrono::steady_clock::now() >= next_attempt_) {
    next_attempt_ = std::chrono::steady_clock::now() + backoff_.NextDelay();
    StartConnect();
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
