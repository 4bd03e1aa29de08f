// The usage job inside `provisioner serve`: every `interval` it bills the closed periods of the
// last `lookback` (so late samples are picked up: re-running a period changes a record only if
// its figure changed, and never turns a complete record incomplete) for every customer with
// data or with a live deployment, and upserts them into usage_records.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "service_metrics.h"
#include "store.h"

namespace billing::provisioner {

struct UsageScheduleOptions {
  std::string prometheus_url;
  std::int64_t period_seconds = 3600;
  std::int64_t lookback_seconds = 6 * 3600;  // recompute the closed periods of this much time
  std::int64_t settle_seconds = 120;         // a period is billed this long after it ends
  double interval_seconds = 300;
  double max_gap_seconds = 300;
};

/// The closed periods to bill at `now`: from floor(now - settle - lookback) to
/// floor(now - settle), on period boundaries, and at least the last settled period.
struct BillingWindow {
  std::int64_t from = 0;
  std::int64_t to = 0;
};
BillingWindow WindowAt(std::int64_t now, const UsageScheduleOptions& options);

class UsageScheduler {
 public:
  UsageScheduler(UsageScheduleOptions options, std::string database_url, Store& store,
                 ServiceMetrics& metrics);
  ~UsageScheduler();
  UsageScheduler(const UsageScheduler&) = delete;
  UsageScheduler& operator=(const UsageScheduler&) = delete;

  /// One run at `now`; returns the rows inserted or changed. Throws on failure.
  std::size_t RunOnce(std::int64_t now);

 private:
  void Loop();
  const UsageScheduleOptions options_;
  const std::string database_url_;
  Store& store_;
  ServiceMetrics& metrics_;
  std::mutex mutex_;
  std::condition_variable stop_requested_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace billing::provisioner
