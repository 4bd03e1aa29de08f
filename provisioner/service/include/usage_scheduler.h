// The usage job inside `provisioner serve`: every `interval` it bills, for every customer of the
// store, the closed periods from its high-water mark (the end of the last period the job stored for
// it) up to the last settled period, and always the last `lookback` again (late samples are picked
// up: re-running a period changes a record only if its figure changed, and never turns a complete
// record incomplete). An outage of any length is therefore backfilled, up to the data's retention:
// periods older than that are reported (log line and metric), never silently skipped.
//
// Memory is bounded by one batch: customers are queried `batch_size` at a time and at most
// `query_periods` periods per query, and each batch is stored (with its high-water marks) before
// the next is fetched.
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
  // How long the metrics store keeps samples: periods older than this cannot be billed any more.
  std::int64_t retention_seconds = 15 * 24 * 3600;  // Prometheus' default
  std::size_t batch_size = 200;                     // customers per query
  std::int64_t query_periods = 24;                  // periods per query
  std::size_t max_response_bytes = 64u << 20;       // larger answers are refused
  // Periods that ended this long ago are final: never overwritten, differences become adjustments.
  std::int64_t final_after_seconds = 72 * 3600;
};

/// What one run did.
struct UsageRunReport {
  std::size_t changed = 0;                 // rows inserted or changed
  std::size_t backfilled_periods = 0;      // periods billed from high-water marks behind the window
  std::size_t past_retention_periods = 0;  // periods that could no longer be billed
};

/// One run of the job at `now` (Unix seconds) against the store at `database_url`; throws on
/// failure (what was stored until then stays stored, with its marks).
UsageRunReport RunUsageJob(const UsageScheduleOptions& options, const std::string& database_url,
                           Store& store, ServiceMetrics& metrics, std::int64_t now);

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
