// Runs one collector on its own thread and schedule, publishing every sample to
// the Exposition.
#pragma once

#include <condition_variable>
#include <thread>

#include "collector.h"
#include "exposition.h"

namespace billing::exporter {

class Sampler {
 public:
  /// Starts sampling at once, then every collector.Interval(). Both references
  /// must outlive this.
  Sampler(Collector& collector, Exposition& exposition);
  /// A sample is overdue once the last publish is older than two intervals, or than one interval
  /// plus twice the previous sample's duration if samples take that long.
  static std::chrono::steady_clock::duration OverdueAfter(
      std::chrono::milliseconds interval, std::chrono::steady_clock::duration last_duration);
  /// Stops after the sample in progress, if any, and joins the thread.
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

 private:
  void Run(std::stop_token stop);
  void Watch(std::stop_token stop);

  Collector& collector_;
  Exposition& exposition_;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  // Guarded by mutex_: the state the watchdog reads.
  bool sampling_ = false;
  bool overdue_published_ = false;
  std::chrono::steady_clock::time_point last_publish_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration last_duration_{0};
  std::condition_variable_any watch_;
  std::jthread thread_;  // last two: start after the members they use exist
  std::jthread watchdog_;
};

}  // namespace billing::exporter
