// I/O half of the MQTT collector: a Paho async client subscribed to the broker's $SYS tree and the
// configured topic filters. Deliveries feed the UsageLedger and BrokerStats on Paho's thread; a
// sample only reads them, so sampling never waits on the broker.
#pragma once

#include <mqtt/async_client.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "backoff.h"
#include "broker_stats.h"
#include "collector.h"
#include "config.h"
#include "usage_ledger.h"

namespace billing::exporter {

/// Forwards the outcome of a Paho action (connect, subscribe) to functions: Paho reports
/// completion only through listeners, on its own thread.
class ActionListener final : public mqtt::iaction_listener {
 public:
  ActionListener(std::function<void()> on_success,
                 std::function<void(const std::string&)> on_failure)
      : on_success_(std::move(on_success)), on_failure_(std::move(on_failure)) {}
  void on_success(const mqtt::token&) override { on_success_(); }
  void on_failure(const mqtt::token& token) override;

 private:
  std::function<void()> on_success_;
  std::function<void(const std::string&)> on_failure_;
};

class MqttCollector final : public Collector {
 public:
  MqttCollector(const MqttConfig& config, std::chrono::milliseconds interval);
  ~MqttCollector() override;  // disconnects
  MqttCollector(const MqttCollector&) = delete;
  MqttCollector& operator=(const MqttCollector&) = delete;

  const std::string& Name() const override { return name_; }
  std::chrono::milliseconds Interval() const override { return interval_; }
  /// Reports the counts so far; (re)connects first when disconnected and the backoff allows.
  SampleResult Sample() override;

 private:
  // kDisconnected -> kConnecting -> kSubscribing -> kUp; any failure -> kDisconnected, or kRefused
  // (connected, but a subscription was refused: the sampler disconnects and starts over).
  enum class State { kDisconnected, kConnecting, kSubscribing, kUp, kRefused };

  void StartConnect();
  void OnConnected();
  void OnSubscribed();
  void Fail(State next, const std::string& error);

  const std::string name_ = "mqtt";
  const MqttConfig& config_;
  const std::chrono::milliseconds interval_;
  UsageLedger ledger_;
  BrokerStats broker_;
  std::atomic<State> state_{State::kDisconnected};
  std::atomic<int> pending_subscriptions_{0};
  std::mutex error_mutex_;
  std::string last_error_;                                // guarded by error_mutex_
  Backoff backoff_;                                       // sampler thread only
  std::chrono::steady_clock::time_point next_attempt_{};  // sampler thread only
  ActionListener connect_listener_;
  ActionListener subscribe_listener_;
  // Last: destroyed first, so no Paho callback can run on a member that is already gone.
  std::unique_ptr<mqtt::async_client> client_;
};

/// Whether the broker should keep the exporter's session (and queue QoS 1 messages for it) while
/// it is away: only under a client id that is stable across restarts and not in a shared group,
/// where a departed member's session would keep taking its share of the messages.
bool UsePersistentSession(const MqttConfig& config);

}  // namespace billing::exporter
