#include "sampler.h"

#include <malloc.h>

#include <algorithm>

#include "billing/common/log.h"

namespace billing::exporter {

using billing::common::Log;
using billing::common::LogLevel;

Sampler::Sampler(Collector& collector, Exposition& exposition)
    : collector_(collector),
      exposition_(exposition),
      thread_([this](std::stop_token stop) { Run(stop); }),
      watchdog_([this](std::stop_token stop) { Watch(stop); }) {}

Sampler::~Sampler() {
  watchdog_.request_stop();
  watchdog_.join();
  thread_.request_stop();
  thread_.join();
}

std::chrono::steady_clock::duration Sampler::OverdueAfter(
    std::chrono::milliseconds interval, std::chrono::steady_clock::duration last_duration) {
  return std::max<std::chrono::steady_clock::duration>(2 * interval, interval + 2 * last_duration);
}

void Sampler::Watch(std::stop_token stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    const auto due = last_publish_ + OverdueAfter(collector_.Interval(), last_duration_);
    if (sampling_ && !overdue_published_ && std::chrono::steady_clock::now() >= due) {
      overdue_published_ = true;
      // Under the lock: the sample's own Publish cannot overtake this one.
      exposition_.PublishOverdue(collector_.Name(), collector_.OverdueFamilies());
      Log(LogLevel::kWarn, collector_.Name(),
          "sample overdue: no answer for " +
              std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - last_publish_)
                                 .count()) +
              " ms since the last sample");
      continue;
    }
    // Until the deadline, a sample starts or ends (a new deadline), or stop.
    const bool was_sampling = sampling_;
    const auto published = last_publish_;
    const auto changed = [&] { return sampling_ != was_sampling || last_publish_ != published; };
    if (sampling_ && !overdue_published_) {
      watch_.wait_until(lock, stop, due, changed);
    } else {
      watch_.wait(lock, stop, changed);
    }
  }
}

void Sampler::Run(std::stop_token stop) {
  using Clock = std::chrono::steady_clock;
  auto next = Clock::now();
  bool was_ok = true;
  std::string last_error;
  while (!stop.stop_requested()) {
    const auto started = Clock::now();
    {
      std::lock_guard lock(mutex_);
      sampling_ = true;
    }
    watch_.notify_all();
    SampleResult result = collector_.Sample();
    const auto took = Clock::now() - started;
    {
      std::lock_guard lock(mutex_);
      exposition_.Publish(collector_.Name(), std::move(result.families), result.ok, took,
                          std::chrono::system_clock::now());
      if (overdue_published_) {
        Log(LogLevel::kInfo, collector_.Name(),
            "the overdue sample finished after " +
                std::to_string(
                    std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) +
                " ms");
      }
      sampling_ = false;
      overdue_published_ = false;
      last_publish_ = Clock::now();
      last_duration_ = took;
    }
    watch_.notify_all();
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
