// I/O half of the MQTT collector: its own MQTT 3.1.1 subscriber on its own thread, subscribed to
// the broker's $SYS tree and the configured topic filters. Deliveries feed the UsageLedger and
// BrokerStats on that thread; a sample only reads them, so sampling never waits on the broker.
//
// Why not a general MQTT library: a subscriber that counts every message of a customer's broker is
// dominated by the cost of receiving. Paho and libmosquitto read each packet with several small
// system calls (measured: two thirds of the exporter's CPU at 20,000 messages/s was poll() and
// recv()). This client reads whatever has arrived into one buffer and parses it in place, and
// after a read that did not fill the buffer waits a few milliseconds so the next read carries a
// batch: counting does not need low latency, only that nothing is lost.
#pragma once

#include <algorithm>
#include <atomic>
#include <bitset>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "backoff.h"
#include "broker_stats.h"
#include "collector.h"
#include "config.h"
#include "mqtt_transport.h"
#include "mqtt_wire.h"
#include "plugin_usage.h"
#include "usage_ledger.h"

namespace billing::exporter {

class MqttCollector final : public Collector {
 public:
  MqttCollector(const MqttConfig& config, std::chrono::milliseconds interval);
  ~MqttCollector() override;  // disconnects and joins the client thread
  MqttCollector(const MqttCollector&) = delete;
  MqttCollector& operator=(const MqttCollector&) = delete;

  const std::string& Name() const override { return name_; }
  std::chrono::milliseconds Interval() const override { return interval_; }
  /// Reports the counts so far and whether the client is connected and subscribed.
  SampleResult Sample() override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Session {
    bool connected = false;   // CONNACK accepted
    bool subscribed = false;  // SUBACK granted every filter
    std::string refused;      // why the broker refused the connection or a subscription
    std::string replies;      // acknowledgements to send after the current batch
    std::size_t filters = 0;  // subscribed, $SYS included
    std::size_t owed = 0;     // acknowledgements in `replies` (PUBACK, PUBREC, PUBCOMP)
    std::size_t frees = 0;    // of which PUBACK and PUBCOMP: each frees a slot of the window
    // The broker's in-flight window to us as we see it: QoS 1 messages not yet acknowledged and
    // QoS 2 messages whose PUBCOMP has not gone.
    std::size_t window = 0;
    std::size_t recs = 0;              // PUBRECs in `replies`
    std::size_t awaiting_release = 0;  // PUBRECs sent whose PUBREL has not come yet
    void Sent() {                      // `replies` went to the broker
      replies.clear();
      awaiting_release += recs;
      recs = 0;
      window -= std::min(window, frees);
      owed = 0;
      frees = 0;
    }
  };
  void Run(std::stop_token stop);
  // Connects, subscribes and counts until the connection ends; returns why it ended.
  std::string RunSession(const std::stop_token& stop);
  // Handles one packet from the broker.
  void Handle(const mqtt::Packet& packet, Session& session);
  void Count(const mqtt::Publish& publish);

  const std::string name_ = "mqtt";
  const MqttConfig& config_;
  const std::chrono::milliseconds interval_;
  const mqtt::BrokerAddress address_;
  UsageLedger ledger_;                           // written by the client thread only
  BrokerStats broker_;                           // written by the client thread only
  PluginUsage plugin_;                           // plugin mode: the broker plugin's latest snapshot
  std::atomic<std::uint64_t> plugin_errors_{0};  // snapshots that could not be read
  std::atomic<std::int64_t> up_since_s_{0};      // steady clock, when up_ last became true
  std::atomic<bool> up_{false};
  std::mutex error_mutex_;
  std::string last_error_;  // guarded by error_mutex_
  // Client thread only: QoS 2 messages counted and acknowledged with PUBREC whose PUBREL has not
  // come yet. A redelivery of one of them (after a lost PUBREC) is not counted again. Kept across
  // reconnects, like the broker's session.
  std::bitset<65536> awaiting_release_;
  mqtt::PacketReader reader_;  // client thread only
  mqtt::Wakeup wakeup_;
  std::jthread thread_;  // last: starts after the members it uses exist, stops first
};

/// Whether the broker should keep the exporter's session (and queue QoS 1 messages for it) while
/// it is away: only under a client id that is stable across restarts and not in a shared group,
/// where a departed member's session would keep taking its share of the messages.
bool UsePersistentSession(const MqttConfig& config);

}  // namespace billing::exporter
