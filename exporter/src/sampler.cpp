#include "sampler.h"

#include <malloc.h>

#include "billing/common/log.h"

namespace billing::exporter {

using billing::common::Log;
using billing::common::LogLevel;

Sampler::Sampler(Collector& collector, Exposition& exposition)
    : collector_(collector),
      exposition_(exposition),
      thread_([this](std::stop_token stop) { Run(stop); }) {}

Sampler::~Sampler() {
  thread_.request_stop();
  thread_.join();
}

void Sampler::Run(std::stop_token stop) {
  using Clock = std::chrono::steady_clock;
  auto next = Clock::now();
  bool was_ok = true;
  std::string last_error;
  while (!stop.stop_requested()) {
    const auto started = Clock::now();
    SampleResult result = collector_.Sample();
    const auto took = Clock::now() - started;
    exposition_.Publish(collector_.Name(), std::move(result.families), result.ok, took,
                        std::chrono::system_clock::now());
    // A sample of a large database allocates tens of MB of short-lived objects on this thread.
    // The large buffers among them are mmapped and already returned (see TuneMalloc in main.cpp),
    // but the small ones (a ClientMetric and its label strings per series) leave free pages inside
    // the arena, which glibc keeps unless asked; without this the exporter's resident size would
    // stay at its peak in every customer namespace.
    malloc_trim(0);

    // Log changes of state, not every failed sample: a database down for a day
    // is one line.
    if (!result.ok && (was_ok || result.error != last_error)) {
      Log(LogLevel::kWarn, collector_.Name(), "sample failed: " + result.error);
    } else if (result.ok && !was_ok) {
      Log(LogLevel::kInfo, collector_.Name(), "sampling again");
    }
    was_ok = result.ok;
    last_error = std::move(result.error);

    // Keep the cadence fixed; after an overrun, start the next sample one
    // interval from now rather than bursting to catch up.
    next += collector_.Interval();
    if (next < Clock::now()) next = Clock::now() + collector_.Interval();
    std::unique_lock lock(mutex_);
    wake_.wait_until(lock, stop, next, [] { return false; });
  }
}

}  // namespace billing::exporter
