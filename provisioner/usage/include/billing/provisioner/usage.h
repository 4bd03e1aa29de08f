// usage: raw metric samples -> billed quantities per customer and period (pure).
// May not depend on: libcurl, libpq/libpqxx, CivetWeb, or any I/O component (kube, store, api,
// service).
//
// DESIGN.md, "Usage" and "Counters and restarts": quantities are exact, reset-aware differences
// between raw samples, attributed to the period that contains the later sample, so consecutive
// periods add up to the whole and nothing is counted twice. Prometheus' increase() extrapolates to
// the window edges and is not used.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "billing/provisioner/result.h"

namespace billing::provisioner {

/// A half-open billing period (start, end], in Unix seconds.
struct Period {
  std::int64_t start = 0;
  std::int64_t end = 0;
};

/// The periods of length `period_seconds` covering [from, to]; an error when the range is empty,
/// reversed or not on period boundaries (multiples of the period since the epoch).
Result<std::vector<Period>> SplitPeriods(std::int64_t from, std::int64_t to,
                                         std::int64_t period_seconds);

/// One raw sample of an upstream counter, with the markers that tell its resets apart.
struct CounterSample {
  double time = 0;   // Unix seconds
  double value = 0;  // as the upstream reported it
  // The upstream's start or statistics-reset time at this sample (0 or NaN: unknown).
  double reset_marker = 0;
  // A secondary marker that only counts together with a decrease (PostgreSQL's start time:
  // statistics survive a clean restart but not a crash).
  double restart_marker = 0;
  // Which series (exporter process) the sample came from: several can observe one upstream.
  int series = 0;
};

struct CounterPolicy {
  // Markers closer than this are the same (the broker's start time is estimated to a second).
  double marker_tolerance_seconds = 2;
  // Samples further apart than this leave a gap: periods that touch it are incomplete.
  double max_gap_seconds = 300;
  // True when a reset may have zeroed only part of the counter (PostgreSQL's reset time also moves
  // when one table's statistics are reset, and the counter is a sum over tables): the period is
  // then billed only the visible increase and marked incomplete for review, never the whole value.
  bool partial_resets = false;
};

struct PeriodQuantity {
  Period period;
  double quantity = 0;
  bool complete = false;
};

/// Usage of an upstream counter per period, from samples of one or more series observing it
/// (exporter restarts and rollouts overlap), in any order. Walking them in time order against a
/// baseline:
///  - a reset (the reset marker moved to a time after the baseline sample, or the restart marker
///    did and the value went down) bills the new value: the counter restarted from zero;
///  - an increase over the baseline bills the difference;
///  - a decrease from the baseline's own series (a dropped table leaving a sum) bills nothing and
///    rebases; from another series it is a lagging copy and is ignored.
/// Each amount goes to the period holding the sample. A period is complete only when samples
/// cover it (a baseline and an end point within max_gap, no larger gap) and each carries its
/// reset marker; non-finite values are dropped.
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
  // From the store: the figure is invoiced, and what later recomputations found on top of it (the
  // sum of its adjustments); quantity + adjustment is the current figure.
  bool final = false;
  double adjustment = 0;
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
/// A JSON array of objects with the same fields, and final and adjustment.
std::string ToJson(const std::vector<UsageRecord>& records);

/// The records of the customers in `known`, in their order, and the ids of the others. Only
/// customers the provisioner created are billed: a customer_id that appears in Prometheus but not
/// in the store is reported, never billed.
struct KnownCustomerRecords {
  std::vector<UsageRecord> billed;
  std::set<std::string> unknown;
};
KnownCustomerRecords KeepKnownCustomers(std::vector<UsageRecord> records,
                                        const std::set<std::string>& known);

}  // namespace billing::provisioner
