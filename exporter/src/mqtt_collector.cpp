#include "mqtt_collector.h"

#include <chrono>
#include <condition_variable>

#include "billing/common/log.h"
#include "billing/common/metric_names.h"

namespace billing::exporter {

using billing::common::Log;
using billing::common::LogLevel;
using namespace std::chrono_literals;
namespace {

constexpr const char* kSysFilter = "$SYS/broker/#";
constexpr std::uint16_t kSubscribePacketId = 1;
constexpr auto kConnectTimeout = 10s;    // TCP, TLS and CONNACK together
constexpr auto kSubscribeTimeout = 10s;  // SUBACK after CONNACK
constexpr auto kWriteTimeout = 10s;
constexpr std::uint16_t kKeepAliveSeconds = 20;
constexpr auto kKeepAlive = std::chrono::seconds(kKeepAliveSeconds);
// After a read that did not fill the buffer, wait this long before reading again, so that the
// next read carries every message that arrived meanwhile instead of one. At 100,000 messages/s of
// 250 bytes that is 125 KB, well within a socket's receive buffer; nothing is lost, counts only
// arrive up to this much later.
constexpr auto kBatchWindow = 5ms;
// QoS 1 and 2: acknowledgements owed are held back at most this long, so that one write carries
// many and the reads in between carry what the broker sends meanwhile. Held back only while the
// broker's in-flight window has room: once it is full the broker sends nothing more until it hears
// from us, so they go at once.
constexpr auto kAckDelay = 5ms;
constexpr auto kAckPause = 1ms;

double NowUnix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool IsSysTopic(std::string_view topic) {
  return topic.size() > 5 && topic.substr(0, 5) == "$SYS/";
}

}  // namespace

// Read buffers: one read takes what has arrived, up to this; a packet must fit whole (except a
// PUBLISH in subscription mode, whose payload beyond it is counted and skipped).
constexpr std::size_t kSubscriptionReadBuffer = 256 * 1024;
constexpr std::size_t kPluginReadBuffer = 16 * 1024 * 1024;

bool UsePersistentSession(const MqttConfig& config) {
  return config.client_id_is_stable && config.shared_group.empty();
}

MqttCollector::MqttCollector(const MqttConfig& config, std::chrono::milliseconds interval)
    : config_(config),
      interval_(interval),
      address_(mqtt::ParseBrokerUrl(config.url)),
      ledger_(config.topic_group_patterns, config.topic_group_levels, config.max_topic_groups),
      // A snapshot of the plugin's 100,000 clients at most is a few MB and must arrive whole.
      reader_(config.source == MqttSource::kPlugin ? kPluginReadBuffer : kSubscriptionReadBuffer),
      thread_([this](std::stop_token stop) { Run(std::move(stop)); }) {}

MqttCollector::~MqttCollector() {
  thread_.request_stop();
  wakeup_.Signal();
  // thread_ joins on destruction, before any member it uses goes.
}

void MqttCollector::Run(std::stop_token stop) {
  Backoff backoff(500ms, config_.reconnect_backoff_max);
  std::mutex mutex;
  std::condition_variable_any stopped;
  while (!stop.stop_requested()) {
    const std::string error = RunSession(stop);
    const bool was_up = up_.exchange(false);
    // Counters read on this connection may belong to a broker that restarts before the next one.
    broker_.Forget();
    plugin_.Forget();
    if (stop.stop_requested()) break;
    if (was_up) {
      backoff.Reset();
      Log(LogLevel::kWarn, name_, error);
    }
    {
      std::lock_guard lock(error_mutex_);
      last_error_ = error;
    }
    std::unique_lock lock(mutex);
    stopped.wait_for(lock, stop, backoff.NextDelay(), [] { return false; });
  }
}

std::string MqttCollector::RunSession(const std::stop_token& stop) {
  Session session;
  try {
    const auto connect_deadline = Clock::now() + kConnectTimeout;
    mqtt::BrokerConnection connection(address_, config_.ca_file, connect_deadline, wakeup_);
    reader_.Reset();
    std::string out;
    mqtt::AppendConnect(out, {config_.client_id, !UsePersistentSession(config_), kKeepAliveSeconds,
                              config_.username, config_.password});
    connection.WriteAll(out, connect_deadline);
    auto last_sent = Clock::now();
    auto last_received = Clock::now();
    Clock::time_point subscribe_deadline{};
    Clock::time_point flush_at{};  // when the oldest acknowledgement owed must go
    while (!stop.stop_requested()) {
      const auto now = Clock::now();
      if (!session.connected && now >= connect_deadline) {
        return "cannot connect to " + config_.url + ": no CONNACK within 10s";
      }
      if (session.connected && !session.subscribed && now >= subscribe_deadline) {
        return "connection to " + config_.url + " lost: no SUBACK within 10s";
      }
      if (now - last_received >= 2 * kKeepAlive) {
        return "connection to " + config_.url + " lost: nothing from the broker for " +
               std::to_string(2 * kKeepAliveSeconds) + "s";
      }
      if (session.connected && now - last_sent >= kKeepAlive / 2) {
        out.clear();
        mqtt::AppendPingreq(out);
        connection.WriteAll(out, now + kWriteTimeout);
        last_sent = now;
      }
      if (session.owed > 0 && now >= flush_at) {
        connection.WriteAll(session.replies, now + kWriteTimeout);
        session.Sent();
        last_sent = now;
      }
      auto wake_at = std::min(last_sent + kKeepAlive / 2, last_received + 2 * kKeepAlive);
      if (session.owed > 0) wake_at = std::min(wake_at, flush_at);
      if (!session.connected) wake_at = std::min(wake_at, connect_deadline);
      if (session.connected && !session.subscribed) wake_at = std::min(wake_at, subscribe_deadline);
      if (connection.WaitReadable(wake_at) != mqtt::BrokerConnection::Wait::kReadable) continue;

      const auto space = reader_.Space();
      const std::size_t read = connection.ReadSome(space);
      if (read == 0) continue;
      last_received = Clock::now();
      reader_.Commit(read);
      const bool was_connected = session.connected;
      const std::size_t owed_before = session.owed;
      try {
        while (auto packet = reader_.Next()) Handle(*packet, session);
      } catch (const mqtt::ProtocolError&) {
        // What was counted is acknowledged, so a persistent session does not redeliver it.
        connection.WriteAll(session.replies, Clock::now() + 1s);
        throw;
      }
      if (!session.refused.empty()) {
        connection.WriteAll(session.replies, Clock::now() + 1s);
        return session.refused;
      }
      if (!was_connected && session.connected)
        subscribe_deadline = Clock::now() + kSubscribeTimeout;
      if (owed_before == 0 && session.owed > 0) flush_at = last_received + kAckDelay;
      // The broker sends nothing more until it hears from us (or it is answering our PUBRECs).
      const bool window_full = session.window >= config_.broker_max_inflight;
      // With the window full, PUBCOMPs wait for the PUBRELs still to come for PUBRECs already
      // sent (the broker sends them as it reads our PUBRECs), so that they go in one write.
      const bool answers_due = window_full && session.awaiting_release == 0;
      if (!session.replies.empty() && (!session.subscribed || answers_due || session.owed == 0)) {
        // The subscription, or acknowledgements the broker is waiting for before it sends more.
        connection.WriteAll(session.replies, Clock::now() + kWriteTimeout);
        session.Sent();
        last_sent = Clock::now();
      } else if (window_full) {
        // Only PUBRELs can come next: wait for them on the socket, not in a pause.
      } else if (read < space.size()) {
        // The buffer did not fill: let a batch arrive. Nothing owed: up to kBatchWindow. With
        // acknowledgements owed, the broker sends at most the rest of its window meanwhile, so
        // only kAckPause: when messages come faster than the window allows, every read fills the
        // window and the loop goes back and forth at the connection's round-trip time, a window
        // per read and per write.
        wakeup_.WaitFor(session.owed == 0 && session.window == 0 ? kBatchWindow : kAckPause);
      }
    }
    // Acknowledge what was counted, so that a persistent session does not deliver it again.
    out = session.replies;
    mqtt::AppendDisconnect(out);
    connection.WriteAll(out, Clock::now() + 1s);
    return "stopped";
  } catch (const mqtt::ProtocolError& e) {
    return "connection to " + config_.url + " lost: the broker sent a malformed packet (" +
           e.what() + ")";
  } catch (const mqtt::TransportError& e) {
    if (!session.connected) return "cannot connect to " + config_.url + ": " + e.what();
    if (!session.subscribed) {
      return "connection to " + config_.url + " lost while subscribing: " + e.what() +
             "; check that the exporter's user may subscribe and that no other client uses its "
             "client id";
    }
    return "connection to " + config_.url + " lost: " + e.what();
  }
}

void MqttCollector::Handle(const mqtt::Packet& packet, Session& session) {
  using mqtt::PacketType;
  switch (packet.type) {
    case PacketType::kPublish: {
      const auto publish = mqtt::ParsePublish(packet);
      if (publish.qos == 2) {
        // Exactly once: a redelivery of a message whose PUBREC got lost is acknowledged again,
        // not counted again.
        if (!awaiting_release_.test(publish.packet_id)) {
          Count(publish);
          ++session.window;
        }
        awaiting_release_.set(publish.packet_id);
        mqtt::AppendAck(session.replies, PacketType::kPubrec, publish.packet_id);
        ++session.owed;
        ++session.recs;
      } else {
        Count(publish);
        if (publish.qos == 1) {
          mqtt::AppendAck(session.replies, PacketType::kPuback, publish.packet_id);
          ++session.owed;
          ++session.window;
          ++session.frees;
        }
      }
      break;
    }
    case PacketType::kPubrel: {
      const auto id = mqtt::ParsePacketId(packet);
      awaiting_release_.reset(id);
      if (session.awaiting_release > 0) --session.awaiting_release;
      mqtt::AppendAck(session.replies, PacketType::kPubcomp, id);
      ++session.owed;
      ++session.frees;
      break;
    }
    case PacketType::kConnack: {
      const auto connack = mqtt::ParseConnack(packet);
      if (connack.return_code != 0) {
        session.refused =
            "cannot connect to " + config_.url + ": " + mqtt::ConnackReason(connack.return_code);
        break;
      }
      // A new session (clean, or one the broker lost) starts packet ids afresh: an id still marked
      // from the old one would make a new QoS 2 message look like a redelivery.
      if (!connack.session_present) awaiting_release_.reset();
      session.connected = true;
      broker_.Forget();
      plugin_.Forget();
      Log(LogLevel::kInfo, name_, "connected to " + config_.url);
      std::vector<mqtt::Subscription> subscriptions{{kSysFilter, 0}};
      if (config_.source == MqttSource::kPlugin) {
        // Each snapshot holds every count so far: the latest one is all that matters, so QoS 0.
        subscriptions.push_back({config_.plugin_topic, 0});
      } else {
        for (const auto& filter : config_.topics) {
          subscriptions.push_back({config_.shared_group.empty()
                                       ? filter
                                       : "$share/" + config_.shared_group + "/" + filter,
                                   config_.qos});
        }
      }
      session.filters = subscriptions.size();
      mqtt::AppendSubscribe(session.replies, kSubscribePacketId, subscriptions);
      break;
    }
    case PacketType::kSuback: {
      const auto suback = mqtt::ParseSuback(packet);
      if (suback.packet_id != kSubscribePacketId) break;
      if (suback.granted_qos.size() != session.filters) {
        throw mqtt::ProtocolError("SUBACK for " + std::to_string(suback.granted_qos.size()) +
                                  " filters, not " + std::to_string(session.filters));
      }
      for (std::size_t i = 0; i < suback.granted_qos.size(); ++i) {
        if (suback.granted_qos[i] >= 0x80) {
          const std::string filter = i == 0 ? std::string(kSysFilter)
                                     : config_.source == MqttSource::kPlugin
                                         ? config_.plugin_topic
                                         : config_.topics[i - 1];
          session.refused = "the broker refused the subscription to " + filter +
                            "; check the ACL for the exporter's user";
          return;
        }
      }
      // Up only once the broker granted every subscription: before that, messages may be missed.
      session.subscribed = true;
      up_since_s_ =
          std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
      up_ = true;
      break;
    }
    case PacketType::kPingresp:
    case PacketType::kPuback:  // replies to requests a subscriber never makes: harmless
    case PacketType::kPubrec:
    case PacketType::kPubcomp:
    case PacketType::kUnsuback:
      break;
    default:
      throw mqtt::ProtocolError("a packet of type " +
                                std::to_string(static_cast<int>(packet.type)) +
                                ", which a broker never sends");
  }
}

void MqttCollector::Count(const mqtt::Publish& publish) {
  if (config_.source == MqttSource::kPlugin && publish.topic == config_.plugin_topic) {
    std::string error = publish.payload_complete()
                            ? plugin_.OnPayload(publish.payload)
                            : "a snapshot of " + std::to_string(publish.payload_size) +
                                  " bytes, larger than the exporter's " +
                                  std::to_string(reader_.capacity()) +
                                  "-byte buffer; lower the plugin's plugin_opt_billing_max_clients";
    if (!error.empty()) {
      plugin_errors_.fetch_add(1, std::memory_order_relaxed);
      Log(LogLevel::kWarn, name_,
          "ignored a usage snapshot on " + config_.plugin_topic + ": " + error);
    }
    return;
  }
  if (IsSysTopic(publish.topic)) {
    if (publish.payload_complete()) {
      broker_.OnSysMessage(publish.topic, publish.payload, !publish.retain, NowUnix());
    }
  } else if (!publish.retain) {
    // A retained copy is the broker replaying an old message to a new subscription (on every
    // reconnect); live deliveries carry the flag cleared (MQTT 3.1.1, 3.3.1.3). Only live ones are
    // traffic.
    ledger_.Count(publish.topic, publish.payload_size);
  }
}

SampleResult MqttCollector::Sample() {
  const bool up = up_.load();
  SampleResult result;
  prometheus::ClientMetric up_metric;
  up_metric.gauge.value = up ? 1 : 0;
  result.families.push_back(prometheus::MetricFamily{
      names::kMqttUp,
      "1 if the exporter is connected and subscribed to the customer's broker, else 0.",
      prometheus::MetricType::Gauge,
      {up_metric}});
  const bool plugin_mode = config_.source == MqttSource::kPlugin;
  const auto snapshot = plugin_mode ? plugin_.Latest() : nullptr;
  if (up) {
    for (auto& family : broker_.Families()) {
      // In plugin mode the billing counters and the start time are the plugin's.
      if (plugin_mode && ReplacedByPlugin(family.name)) continue;
      result.families.push_back(std::move(family));
    }
    if (snapshot) {
      for (auto& family :
           PluginFamilies(*snapshot, {config_.per_client_series, config_.max_client_series})) {
        result.families.push_back(std::move(family));
      }
    }
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
  malformed.counter.value = static_cast<double>(broker_.malformed() + plugin_errors_.load());
  result.families.push_back(
      prometheus::MetricFamily{names::kMqttSysPayloadErrors,
                               "$SYS payloads that could not be parsed and were ignored.",
                               prometheus::MetricType::Counter,
                               {malformed}});

  result.ok = up;
  if (!up) {
    std::lock_guard lock(error_mutex_);
    result.error = last_error_.empty() ? "not connected to " + config_.url : last_error_;
  } else if (plugin_mode && snapshot) {
    // A plugin that stopped publishing (its broker thread busy, a failed publish) leaves the last
    // counts frozen: they are still served, but the sample fails so that its age and /readyz say
    // so. Three of the plugin's intervals allow for one late snapshot.
    const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - plugin_.LatestReceivedAt());
    const auto allowed =
        std::chrono::milliseconds(3 * std::max<std::uint64_t>(snapshot->interval_ms, 1000));
    if (age > allowed) {
      result.ok = false;
      result.error = "the broker plugin's last usage snapshot is " +
                     std::to_string(age.count() / 1000) + " s old (it publishes every " +
                     std::to_string(snapshot->interval_ms / 1000) +
                     " s): its counts are frozen; check the broker's log";
    }
  } else if (plugin_mode && !snapshot) {
    // The plugin publishes a retained snapshot, so one arrives right after subscribing; allow for
    // a slow broker before calling it missing.
    const auto now_s =
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
    if (now_s - up_since_s_.load() > 15) {
      result.ok = false;
      result.error = "no usage snapshot on " + config_.plugin_topic +
                     "; load billing_mosquitto_plugin.so in the broker (mosquitto.conf: plugin "
                     "/path/billing_mosquitto_plugin.so) or set mqtt.source: subscription";
    }
  }
  return result;
}

}  // namespace billing::exporter
