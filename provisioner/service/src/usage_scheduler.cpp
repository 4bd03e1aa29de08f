#include "usage_scheduler.h"

#include <chrono>

#include "billing/common/log.h"
#include "prometheus_client.h"
#include "usage_job.h"
#include "usage_store.h"

namespace billing::provisioner {

using billing::common::Log;
using billing::common::LogLevel;

BillingWindow WindowAt(std::int64_t now, const UsageScheduleOptions& o) {
  auto floor_to_period = [&](std::int64_t t) {
    const auto p = o.period_seconds;
    return (t >= 0 ? t / p : (t - p + 1) / p) * p;
  };
  BillingWindow window;
  window.to = floor_to_period(now - o.settle_seconds);
  window.from = floor_to_period(now - o.settle_seconds - o.lookback_seconds);
  if (window.from >= window.to) window.from = window.to - o.period_seconds;
  return window;
}

UsageScheduler::UsageScheduler(UsageScheduleOptions options, std::string database_url, Store& store,
                               ServiceMetrics& metrics)
    : options_(std::move(options)),
      database_url_(std::move(database_url)),
      store_(store),
      metrics_(metrics),
      thread_([this] { Loop(); }) {}

UsageScheduler::~UsageScheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_requested_.notify_all();
  thread_.join();
}

std::size_t UsageScheduler::RunOnce(std::int64_t now) {
  const auto window = WindowAt(now, options_);
  const auto periods = SplitPeriods(window.from, window.to, options_.period_seconds);
  if (!periods.ok()) throw std::runtime_error("usage window: " + periods.error());
  UsageQuery query;
  query.from = window.from;
  query.to = window.to;
  query.period_seconds = options_.period_seconds;
  query.max_gap_seconds = options_.max_gap_seconds;
  query.known_customers = store_.BillableCustomers();
  auto split = KeepKnownCustomers(
      ComputeUsage(PrometheusClient(options_.prometheus_url), query, periods.value()),
      store_.CustomerIds());
  metrics_.SetUnknownUsageCustomers(split.unknown.size());
  if (!split.unknown.empty()) {
    // A customer_id the provisioner never created: with the scrape configuration's relabelling it
    // can only come from a customer-{id} namespace made by hand; it is reported, never billed.
    std::string ids;
    std::size_t listed = 0;
    for (const auto& id : split.unknown) {
      if (listed++ == 10) {
        ids += ", ...";
        break;
      }
      ids += (ids.empty() ? "" : ", ") + id;
    }
    Log(LogLevel::kWarn, "usage",
        std::to_string(split.unknown.size()) +
            " customer(s) with usage in Prometheus are not in the store and are not billed: " +
            ids);
  }
  UsageStore usage_store(database_url_);
  return usage_store.Upsert(split.billed);
}

void UsageScheduler::Loop() {
  const auto interval = std::chrono::duration<double>(options_.interval_seconds);
  while (true) {
    const auto now = std::chrono::system_clock::now();
    const auto unix_now =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    try {
      const auto changed = RunOnce(unix_now);
      metrics_.CountUsageRun(true, static_cast<double>(unix_now));
      if (changed > 0) {
        Log(LogLevel::kInfo, "usage",
            std::to_string(changed) + " usage records inserted or changed");
      }
    } catch (const std::exception& e) {
      metrics_.CountUsageRun(false, static_cast<double>(unix_now));
      Log(LogLevel::kWarn, "usage",
          std::string("usage job failed, retrying next run: ") + e.what());
    }
    std::unique_lock lock(mutex_);
    if (stop_requested_.wait_for(lock, interval, [&] { return stopping_; })) return;
  }
}

}  // namespace billing::provisioner
