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
  /// Stops after the sample in progress, if any, and joins the thread.
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

 private:
  void Run(std::stop_token stop);

  Collector& collector_;
  Exposition& exposition_;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::jthread thread_;  // last: starts after the members it uses exist
};

}  // namespace billing::exporter
