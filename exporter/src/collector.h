// The seam between what is sampled and how it is served: a collector takes one
// sample of its source and returns it as metric families. It owns its
// connection; the Sampler calls it on the collector's own schedule, never from
// a scrape.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace billing::exporter {

struct SampleResult {
  /// What to serve until the next sample. On failure this still carries what is
  /// known (e.g. iotistic_postgres_up 0); series that could not be read are
  /// absent rather than stale.
  std::vector<prometheus::MetricFamily> families;
  bool ok = false;
  std::string error;  // why it failed; safe to log (no secrets)
};

class Collector {
 public:
  virtual ~Collector() = default;
  /// Stable name, the `collector` label of the exporter's own metrics.
  virtual const std::string& Name() const = 0;
  virtual std::chrono::milliseconds Interval() const = 0;
  /// Takes one sample. Called from one thread only; never throws.
  virtual SampleResult Sample() = 0;
  /// What to serve, in place of the same-named families of the last sample, while a sample is
  /// overdue (it has run for longer than two intervals: a source that froze rather than failed).
  /// Called from another thread than Sample(), concurrently with it: must not touch the source.
  virtual std::vector<prometheus::MetricFamily> OverdueFamilies() const { return {}; }
};

using CollectorPtr = std::unique_ptr<Collector>;

}  // namespace billing::exporter
