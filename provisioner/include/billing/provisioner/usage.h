// Billable usage from raw metric samples (pure: no I/O). DESIGN.md, "Usage" and "Counters and
// restarts": quantities are exact, reset-aware differences between raw samples, attributed to the
// period that contains the later sample, so consecutive periods add up to the whole and nothing
// is counted twice. Prometheus' increase() extrapolates to the window edges and is not used.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace billing::provisioner {

/// A half-open billing period (start, end], in Unix seconds.
struct Period {
  std::int64_t start = 0;
  std::int64_t end = 0;
};

/// The periods of length `period_seconds` covering [from, to]; nullopt with `error` set when the
/// range is empty, reversed or not on period boundaries (multiples of the period since the epoch).
std::optional<std::vector<Period>> SplitPeriods(std::int64_t from, std::int64_t to,
                                                std::int64_t period_seconds, std::string& error);

/// One raw sample of an upstream counter, with the markers that tell its resets apart.
struct CounterSample {
  double time = 0;   // Unix seconds
  double value = 0;  // as the upstream reported it
  // The upstream's start or statistics-reset time at this sample (0 or NaN: unknown).
  double reset_marker = 0;
  // A secondary marker that only counts together with a decrease (PostgreSQL's start time:
  // statistics survive a clean restart but not a crash).
  double restart_marker = 0;
};

struct CounterPolicy {
  // Markers closer than this are the same (the broker's start time is estimated to a second).
  double marker_tolerance_seconds = 2;
  // Samples further apart than this leave a gap: periods that touch it are incomplete.
  double max_gap_seconds = 300;
};

struct PeriodQuantity {
  Period period;
  double quantity = 0;
  bool complete = false;
};

/// Usage of an upstream counter per period. Between consecutive samples the increase is the
/// difference, or, when the reset marker changed (or the restart marker changed and the value
/// went down), the new value itself: the counter restarted from zero and everything it counted
/// since is new. A decrease without a marker (a dropped table leaving a sum, or a lagging copy of
/// the same counter from another exporter) adds nothing and rebases. `samples` may come from
/// several series of the same upstream (exporter restarts, replicas) in any order.
std::vector<PeriodQuantity> CounterUsage(std::vector<CounterSample> samples,
                                         const std::vector<Period>& periods,
                                         const CounterPolicy& policy);

struct GaugeSample {
  double time = 0;
  double value = 0;
};

/// The time integral of a gauge per period, in value-seconds (trapezoids between samples,
/// interpolated at the period edges). Samples at the same time are summed first (several
/// databases of one customer). Gaps over max_gap are not integrated and mark the period
/// incomplete.
std::vector<PeriodQuantity> GaugeIntegral(std::vector<GaugeSample> samples,
                                          const std::vector<Period>& periods,
                                          double max_gap_seconds);

struct UsageRecord {
  std::string customer_id;
  std::string metric;  // mqtt_messages, mqtt_bytes, rows_inserted, storage_byte_hours
  Period period;
  double quantity = 0;
  bool complete = false;
};

/// RFC 3339 UTC with seconds ("2026-11-25T10:00:00Z").
std::string FormatTime(std::int64_t unix_seconds);
/// Parses RFC 3339 ("2026-11-25T10:00:00Z", "...+01:00", fractional seconds refused) or plain
/// Unix seconds.
std::optional<std::int64_t> ParseTime(const std::string& text);

/// Counts print as integers, byte-hours with three decimals.
std::string FormatQuantity(const std::string& metric, double quantity);

/// customer_id,metric,period_start,period_end,quantity,complete (with a header line).
std::string ToCsv(const std::vector<UsageRecord>& records);
/// A JSON array of objects with the same fields.
std::string ToJson(const std::vector<UsageRecord>& records);

}  // namespace billing::provisioner
