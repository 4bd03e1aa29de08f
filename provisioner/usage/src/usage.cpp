#include "billing/provisioner/usage.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <regex>

namespace billing::provisioner {
namespace {

bool Differs(double a, double b, double tolerance) {
  if (std::isnan(a) || std::isnan(b)) return false;  // unknown: no evidence of a reset
  return std::abs(a - b) > tolerance;
}

// The period whose (start, end] contains `time`, if any.
const Period* PeriodOf(const std::vector<Period>& periods, double time) {
  auto it = std::lower_bound(periods.begin(), periods.end(), time, [](const Period& p, double t) {
    return static_cast<double>(p.end) < t;
  });
  if (it == periods.end() || time <= static_cast<double>(it->start)) return nullptr;
  return &*it;
}

// Whether sorted sample times cover (start, end] without a gap over max_gap: a sample no more than
// max_gap before the start (the baseline), one at or after the end no more than max_gap later (so
// that nothing before the end is still missing), and none further apart in between.
template <typename Sample>
bool Covered(const std::vector<Sample>& samples, const Period& period, double max_gap) {
  const double start = static_cast<double>(period.start);
  const double end = static_cast<double>(period.end);
  auto after = [](double t, const Sample& s) { return t < s.time; };
  auto before = [](const Sample& s, double t) { return s.time < t; };
  const auto first_after_start = std::upper_bound(samples.begin(), samples.end(), start, after);
  const auto at_or_after_end = std::lower_bound(samples.begin(), samples.end(), end, before);
  if (first_after_start == samples.begin() || at_or_after_end == samples.end()) return false;
  const auto baseline = first_after_start - 1;  // last sample at or before the start
  if (start - baseline->time >= max_gap || at_or_after_end->time - end >= max_gap) return false;
  for (auto it = baseline; it != at_or_after_end; ++it) {
    if ((it + 1)->time - it->time > max_gap) return false;
  }
  return true;
}

std::vector<PeriodQuantity> EmptyQuantities(const std::vector<Period>& periods) {
  std::vector<PeriodQuantity> out;
  for (const auto& p : periods) out.push_back(PeriodQuantity{p, 0, false});
  return out;
}

}  // namespace

Result<std::vector<Period>> SplitPeriods(std::int64_t from, std::int64_t to,
                                         std::int64_t period_seconds) {
  if (period_seconds <= 0) {
    return Error{"--period must be positive"};
  }
  if (to <= from) {
    return Error{"--to (" + FormatTime(to) + ") must be after --from (" + FormatTime(from) + ")"};
  }
  if (from % period_seconds != 0 || to % period_seconds != 0) {
    return Error{"--from and --to must be on period boundaries (multiples of " +
                 std::to_string(period_seconds) + "s since the epoch, e.g. whole hours for 1h)"};
  }
  if ((to - from) / period_seconds > 100000) {
    return Error{"the range holds more than 100000 periods; split it up"};
  }
  std::vector<Period> periods;
  for (std::int64_t start = from; start < to; start += period_seconds) {
    periods.push_back(Period{start, start + period_seconds});
  }
  return periods;
}

std::vector<PeriodQuantity> CounterUsage(std::vector<CounterSample> samples,
                                         const std::vector<Period>& periods,
                                         const CounterPolicy& policy) {
  std::erase_if(samples,
                [](const CounterSample& s) { return !std::isfinite(s.value) || s.value < 0; });
  std::stable_sort(samples.begin(), samples.end(),
                   [](const CounterSample& a, const CounterSample& b) { return a.time < b.time; });
  auto out = EmptyQuantities(periods);
  std::vector<bool> doubtful(periods.size(), false);  // a missing marker or a partial reset
  auto period_index = [&](double time) -> std::optional<std::size_t> {
    const Period* p = PeriodOf(periods, time);
    if (p == nullptr) return std::nullopt;
    return static_cast<std::size_t>(p - periods.data());
  };
  const double tolerance = policy.marker_tolerance_seconds;
  std::optional<CounterSample> baseline;
  double reset_marker = std::nan("");  // the last known markers
  double restart_marker = std::nan("");
  for (const auto& cur : samples) {
    const auto index = period_index(cur.time);
    if (std::isnan(cur.reset_marker) && index) doubtful[*index] = true;
    if (!baseline) {
      baseline = cur;
    } else {
      // A reset happens after the last sample before it; a marker that moved to an earlier time
      // is an estimate that drifted, not a reset.
      const bool reset = Differs(cur.reset_marker, reset_marker, tolerance) &&
                         cur.reset_marker >= baseline->time - tolerance;
      const bool restart = cur.value < baseline->value &&
                           Differs(cur.restart_marker, restart_marker, tolerance) &&
                           cur.restart_marker >= baseline->time - tolerance;
      double delta = 0;
      if ((reset || restart) && !policy.partial_resets) {
        delta = cur.value;  // counted from zero since the reset
        baseline = cur;
      } else if (reset || restart) {
        delta = std::max(0.0, cur.value - baseline->value);
        baseline = cur;
        if (index) doubtful[*index] = true;
      } else if (cur.value >= baseline->value) {
        delta = cur.value - baseline->value;
        baseline = cur;
      } else if (cur.series == baseline->series) {
        baseline = cur;  // went down within one series: nothing billed, counted on from here
      }                  // else: a lagging copy from another series, ignored
      if (index) out[*index].quantity += delta;
    }
    if (!std::isnan(cur.reset_marker)) reset_marker = cur.reset_marker;
    if (!std::isnan(cur.restart_marker)) restart_marker = cur.restart_marker;
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i].complete = !doubtful[i] && Covered(samples, out[i].period, policy.max_gap_seconds);
  }
  return out;
}

std::vector<PeriodQuantity> GaugeIntegral(std::vector<GaugeSample> samples,
                                          const std::vector<Period>& periods,
                                          double max_gap_seconds) {
  std::erase_if(samples, [](const GaugeSample& s) { return !std::isfinite(s.value); });
  std::sort(samples.begin(), samples.end(),
            [](const GaugeSample& a, const GaugeSample& b) { return a.time < b.time; });
  // Series scraped together share a timestamp: their sum is the customer's total at that moment.
  std::vector<GaugeSample> totals;
  for (const auto& s : samples) {
    if (!totals.empty() && totals.back().time == s.time) {
      totals.back().value += s.value;
    } else {
      totals.push_back(s);
    }
  }
  auto out = EmptyQuantities(periods);
  for (auto& q : out) {
    const double start = static_cast<double>(q.period.start);
    const double end = static_cast<double>(q.period.end);
    for (std::size_t i = 1; i < totals.size(); ++i) {
      const auto& a = totals[i - 1];
      const auto& b = totals[i];
      if (b.time <= start || a.time >= end || b.time - a.time > max_gap_seconds) continue;
      auto at = [&](double t) {
        return a.value + (b.value - a.value) * (t - a.time) / (b.time - a.time);
      };
      const double x0 = std::max(a.time, start);
      const double x1 = std::min(b.time, end);
      q.quantity += (x1 - x0) * (at(x0) + at(x1)) / 2;
    }
    q.complete = Covered(totals, q.period, max_gap_seconds);
  }
  return out;
}

std::string FormatTime(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::optional<std::int64_t> ParseTime(const std::string& text) {
  static const std::regex unix_seconds(R"(\d{1,12})");
  if (std::regex_match(text, unix_seconds)) return std::stoll(text);
  static const std::regex rfc3339(
      R"((\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})([Zz]|([+-])(\d{2}):(\d{2})))");
  std::smatch m;
  if (!std::regex_match(text, m, rfc3339)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60) {
    return std::nullopt;
  }
  const std::tm given = tm;
  std::int64_t seconds = timegm(&tm);
  if (tm.tm_mday != given.tm_mday) return std::nullopt;  // e.g. February 30th rolled over
  if (m[8].matched) {
    if (std::stoi(m[9]) > 23 || std::stoi(m[10]) > 59) return std::nullopt;
    const std::int64_t offset = std::stoi(m[9]) * 3600 + std::stoi(m[10]) * 60;
    seconds += m[8] == "+" ? -offset : offset;
  }
  return seconds;
}

std::string FormatQuantity(const std::string& metric, double quantity) {
  if (!std::isfinite(quantity)) quantity = 0;  // the computations above never produce one
  char text[64];
  if (metric == "storage_byte_hours" || metric == "mqtt_connection_minutes") {
    std::snprintf(text, sizeof text, "%.3f", quantity);
  } else {
    std::snprintf(text, sizeof text, "%.0f", quantity);
  }
  return text;
}

std::string ToCsv(const std::vector<UsageRecord>& records) {
  std::string out = "customer_id,metric,period_start,period_end,quantity,complete\n";
  for (const auto& r : records) {
    out += r.customer_id + "," + r.metric + "," + FormatTime(r.period.start) + "," +
           FormatTime(r.period.end) + "," + FormatQuantity(r.metric, r.quantity) + "," +
           (r.complete ? "true" : "false") + "\n";
  }
  return out;
}

std::string ToJson(const std::vector<UsageRecord>& records) {
  auto array = nlohmann::json::array();
  for (const auto& r : records) {
    // The quantity keeps the CSV's exact text form as a JSON number.
    array.push_back(
        {{"customer_id", r.customer_id},
         {"metric", r.metric},
         {"period_start", FormatTime(r.period.start)},
         {"period_end", FormatTime(r.period.end)},
         {"quantity", nlohmann::json::parse(FormatQuantity(r.metric, r.quantity))},
         {"complete", r.complete},
         {"final", r.final},
         {"adjustment", nlohmann::json::parse(FormatQuantity(r.metric, r.adjustment + 0.0))}});
  }
  return array.dump(2) + "\n";
}

KnownCustomerRecords KeepKnownCustomers(std::vector<UsageRecord> records,
                                        const std::set<std::string>& known) {
  KnownCustomerRecords out;
  for (auto& record : records) {
    if (known.count(record.customer_id)) {
      out.billed.push_back(std::move(record));
    } else {
      out.unknown.insert(record.customer_id);
    }
  }
  return out;
}

}  // namespace billing::provisioner
