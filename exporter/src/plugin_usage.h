// Plugin mode of the MQTT collector: the broker plugin's usage snapshots (exporter/plugin) turned
// into the billing counters. The plugin counts from zero when the broker starts and every snapshot
// carries that start time, so the counters follow DESIGN.md's "Counters and restarts" exactly: an
// exporter restart reads the same counts again (the snapshot is retained), a broker restart shows
// a new start time.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "usage_snapshot.h"

namespace billing::exporter {

struct PluginSeriesOptions {
  bool per_client = false;
  std::size_t max_clients = 1000;
};

/// The families a snapshot is served as. Pure.
std::vector<prometheus::MetricFamily> PluginFamilies(const plugin::Snapshot& snapshot,
                                                     const PluginSeriesOptions& options);

/// Whether a $SYS family is one the plugin's counts replace in plugin mode.
bool ReplacedByPlugin(std::string_view family_name);

/// The latest snapshot, written on the MQTT client's thread and read by the sampler.
class PluginUsage {
 public:
  /// Decodes and keeps one snapshot payload. Returns "" or why it was not taken.
  std::string OnPayload(std::string_view payload);
  /// A new connection: the snapshot known so far may be from a broker lifetime that has ended.
  void Forget();
  /// The snapshot received on the current connection, if any.
  std::shared_ptr<const plugin::Snapshot> Latest() const;
  /// When (steady clock) the latest snapshot was received: the plugin's sign of life.
  std::chrono::steady_clock::time_point LatestReceivedAt() const;

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const plugin::Snapshot> latest_;     // guarded by mutex_
  bool fresh_ = false;                                 // guarded: received on this connection
  std::chrono::steady_clock::time_point received_at_;  // guarded
};

}  // namespace billing::exporter
