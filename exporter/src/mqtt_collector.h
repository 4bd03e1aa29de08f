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

/// Calls a function when a Paho action fails (Paho reports failures only through listeners).
class FailureListener final : public mqtt::iaction_listener {
 public:
  explicit FailureListener(std::function<void(const std::string&)> on_failure)
      : on_failure_(std::move(on_failure)) {}
  void on_success(const mqtt::token&) override {}
  void on_failure(const mqtt::token& token) override;

 private:
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
  void StartConnect();
  void OnConnected();
  void OnConnectionLost(const std::string& cause);
  void OnConnectFailed(const std::string& why);

  const std::string name_ = "mqtt";
  const MqttConfig& config_;
  const std::chrono::milliseconds interval_;
  UsageLedger ledger_;
  BrokerStats broker_;
  // Paho keeps references to the listeners; they are declared before the client so they
  // outlive it.
  FailureListener connect_listener_;
  FailureListener subscribe_listener_;
  std::unique_ptr<mqtt::async_client> client_;

  std::atomic<bool> connecting_{false};
  std::atomic<bool> subscribed_{false};
  std::mutex error_mutex_;
  std::string last_error_;                                // guarded by error_mutex_
  Backoff backoff_;                                       // sampler thread only
  std::chrono::steady_clock::time_point next_attempt_{};  // sampler thread only
};

}  // namespace billing::exporter
