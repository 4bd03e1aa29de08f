#include "usage_scheduler.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <stdexcept>

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

namespace {

std::int64_t FloorToPeriod(std::int64_t t, std::int64_t p) {
  return (t >= 0 ? t / p : (t - p + 1) / p) * p;
}

void ReportUnknown(const std::set<std::string>& unknown) {
  if (unknown.empty()) return;
  // A customer_id the provisioner never created: with the scrape configuration's relabelling it
  // can only come from a customer-{id} namespace made by hand; it is reported, never billed.
  std::string ids;
  std::size_t listed = 0;
  for (const auto& id : unknown) {
    if (listed++ == 10) {
      ids += ", ...";
      break;
    }
    ids += (ids.empty() ? "" : ", ") + id;
  }
  Log(LogLevel::kWarn, "usage",
      std::to_string(unknown.size()) +
          " customer(s) with usage in Prometheus are not in the store and are not billed: " + ids);
}

// Bills [from, to) for `customers` in chunks of at most query_periods periods, storing each chunk
// with the customers' high-water marks moved to its end.
std::size_t BillRange(const UsageScheduleOptions& o, const PrometheusClient& prometheus,
                      UsageStore& usage_store, const std::vector<std::string>& customers,
                      const std::set<std::string>& billable, std::int64_t from, std::int64_t to) {
  std::size_t changed = 0;
  const std::int64_t step = o.period_seconds * std::max<std::int64_t>(1, o.query_periods);
  for (std::int64_t chunk = from; chunk < to; chunk += step) {
    const std::int64_t chunk_end = std::min(to, chunk + step);
    const auto periods = SplitPeriods(chunk, chunk_end, o.period_seconds);
    if (!periods.ok()) throw std::runtime_error("usage window: " + periods.error());
    UsageQuery query;
    query.from = chunk;
    query.to = chunk_end;
    query.period_seconds = o.period_seconds;
    query.max_gap_seconds = o.max_gap_seconds;
    query.customer_ids = customers;
    for (const auto& id : customers) {
      if (billable.count(id)) query.known_customers.push_back(id);
    }
    const auto records = ComputeUsage(prometheus, query, periods.value());
    changed += usage_store.UpsertAndMark(records, customers, chunk_end);
  }
  return changed;
}

}  // namespace

UsageRunReport RunUsageJob(const UsageScheduleOptions& o, const std::string& database_url,
                           Store& store, ServiceMetrics& metrics, std::int64_t now) {
  const auto window = WindowAt(now, o);
  const PrometheusClient prometheus(o.prometheus_url, o.max_response_bytes);
  UsageStore usage_store(database_url);
  // Before anything is recomputed: a period past its grace is final from this run on.
  usage_store.FinalizeBefore(now - o.final_after_seconds);
  const auto marks = usage_store.BillingMarks();
  const auto billable_list = store.BillableCustomers();
  const std::set<std::string> billable(billable_list.begin(), billable_list.end());
  // The oldest period whose samples (and its baseline before it) are still kept.
  const std::int64_t retained_from =
      FloorToPeriod(now - o.retention_seconds, o.period_seconds) + o.period_seconds;

  UsageRunReport report;
  // Customers behind the window first, one by one from their own mark: a long outage is billed
  // from where it stopped, oldest first, each chunk stored before the next is fetched.
  for (const auto& mark : marks) {
    std::int64_t start =
        mark.billed_until.value_or(FloorToPeriod(mark.created_at, o.period_seconds));
    if (start >= window.from) continue;
    if (start < retained_from) {
      const std::int64_t lost_to = std::min(retained_from, window.from);
      const auto lost = static_cast<std::size_t>((lost_to - start) / o.period_seconds);
      report.past_retention_periods += lost;
      metrics.CountUsagePeriodsPastRetention(lost);
      Log(LogLevel::kError, "usage",
          "customer " + mark.customer_id + ": " + std::to_string(lost) + " period(s) from " +
              FormatTime(start) + " to " + FormatTime(lost_to) +
              " are older than the metrics' retention (PROVISIONER_USAGE_RETENTION " +
              std::to_string(o.retention_seconds) + "s) and cannot be billed from samples");
      start = lost_to;
      if (start >= window.from) {
        usage_store.UpsertAndMark({}, {mark.customer_id}, start);
        continue;
      }
    }
    report.backfilled_periods += static_cast<std::size_t>((window.from - start) / o.period_seconds);
    report.changed +=
        BillRange(o, prometheus, usage_store, {mark.customer_id}, billable, start, window.from);
  }

  // Then the window for everyone, one batch of customers at a time.
  std::set<std::string> known;
  for (const auto& mark : marks) known.insert(mark.customer_id);
  std::set<std::string> unknown;
  for (const auto& id : CustomersWithData(prometheus, window.from, window.to, o.max_gap_seconds)) {
    if (!known.count(id)) unknown.insert(id);
  }
  metrics.SetUnknownUsageCustomers(unknown.size());
  ReportUnknown(unknown);
  const std::size_t batch_size = std::max<std::size_t>(1, o.batch_size);
  std::vector<std::string> batch;
  for (auto it = known.begin(); it != known.end();) {
    batch.push_back(*it);
    ++it;
    if (batch.size() == batch_size || it == known.end()) {
      report.changed +=
          BillRange(o, prometheus, usage_store, batch, billable, window.from, window.to);
      batch.clear();
    }
  }
  metrics.CountUsageAdjustments(usage_store.adjustments_written());
  metrics.SetUsageLastComplete(usage_store.LastCompletePeriods(billable_list));
  return report;
}

std::size_t UsageScheduler::RunOnce(std::int64_t now) {
  return RunUsageJob(options_, database_url_, store_, metrics_, now).changed;
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
