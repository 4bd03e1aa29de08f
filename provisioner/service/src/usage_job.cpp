#include "usage_job.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string_view>
#include <tuple>

#include "billing/common/metric_names.h"

namespace billing::provisioner {
namespace {

// What identifies one scrape of one exporter: the series' labels without the metric name and the
// labels the metric itself adds, plus the sample time.
std::string ScrapeKey(const std::map<std::string, std::string>& labels, double time) {
  std::string key;
  for (const auto& [name, value] : labels) {
    if (name == "__name__" || name == "database") continue;
    key += name + "=" + value + ",";
  }
  return key + "@" + std::to_string(time);
}

// A regular expression matching exactly `text` (customer ids are [a-z0-9-], but the matcher must
// not depend on that).
std::string RegexLiteral(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (std::string_view(R"(\.+*?()|[]{}^$)").find(c) != std::string_view::npos) out += "\\\\";
    if (c == '"') out += '\\';
    out += c;
  }
  return out;
}

std::string CustomerMatcher(const UsageQuery& q) {
  if (q.customer_id) return "customer_id=\"" + *q.customer_id + "\"";
  if (q.customer_ids.empty()) return "customer_id!=\"\"";
  std::string alternatives;
  for (const auto& id : q.customer_ids) {
    alternatives += (alternatives.empty() ? "" : "|") + RegexLiteral(id);
  }
  return "customer_id=~\"" + alternatives + "\"";
}

struct Fetched {
  std::map<std::string, std::vector<RawSeries>> by_customer;
};

Fetched Fetch(const PrometheusClient& prometheus, const std::string& metric, const UsageQuery& q) {
  const std::string matcher = CustomerMatcher(q);
  // From well before the first period (its baseline, even across an outage that straddles the
  // start: the increase then goes to the period of the first sample after it) to one gap after
  // the last (the end points).
  const auto gap = static_cast<std::int64_t>(std::ceil(q.max_gap_seconds));
  const std::int64_t look_back = std::max<std::int64_t>(gap, 3600);
  const auto series = prometheus.RangeSamples(metric + "{" + matcher + "}",
                                              q.to - q.from + look_back + gap, q.to + gap);
  Fetched out;
  for (const auto& s : series) {
    const auto it = s.labels.find("customer_id");
    if (it != s.labels.end()) out.by_customer[it->second].push_back(s);
  }
  return out;
}

std::map<std::string, double> MarkerIndex(const Fetched& markers, const std::string& customer) {
  std::map<std::string, double> index;
  const auto it = markers.by_customer.find(customer);
  if (it == markers.by_customer.end()) return index;
  for (const auto& series : it->second) {
    for (const auto& [time, value] : series.samples) index[ScrapeKey(series.labels, time)] = value;
  }
  return index;
}

double Lookup(const std::map<std::string, double>& index, const std::string& key) {
  const auto it = index.find(key);
  return it == index.end() ? std::nan("") : it->second;
}

struct CounterSpec {
  const char* usage_metric;
  const char* counter;
  const char* reset_marker;
  const char* restart_marker;  // may be null
  bool partial_resets;         // see CounterPolicy
  double scale = 1.0;          // billed units per counter unit
  bool plugin_only = false;    // served only by an exporter in plugin mode
};

namespace names = common::metric_names;
constexpr CounterSpec kCounters[] = {
    {"mqtt_messages", names::kBrokerPublishReceived, names::kBrokerStartTime, nullptr, false},
    {"mqtt_bytes", names::kBrokerBytesReceived, names::kBrokerStartTime, nullptr, false},
    {"rows_inserted", names::kRowsInserted, names::kStatsReset, names::kPostgresStartTime, true},
    // Only where the broker runs the billing plugin (the exporter's plugin mode); absent
    // elsewhere, so no records.
    {"mqtt_connection_minutes", names::kMqttConnectionSeconds, names::kBrokerStartTime, nullptr,
     false, 1.0 / 60, true},
    {"mqtt_message_units", names::kMqttMessageUnits, names::kBrokerStartTime, nullptr, false, 1.0,
     true},
};

}  // namespace

std::vector<UsageRecord> ComputeUsage(const PrometheusClient& prometheus, const UsageQuery& query,
                                      const std::vector<Period>& periods) {
  // Everything is fetched first: one query per metric for all customers.
  std::map<std::string, Fetched> fetched;
  auto fetch = [&](const char* metric) {
    if (metric != nullptr && !fetched.count(metric))
      fetched[metric] = Fetch(prometheus, metric, query);
  };
  for (const auto& spec : kCounters) {
    fetch(spec.counter);
    fetch(spec.reset_marker);
    fetch(spec.restart_marker);
  }
  const char* kSize = names::kDatabaseSize;
  fetch(kSize);

  std::set<std::string> customers;
  if (query.customer_id) {
    customers.insert(*query.customer_id);
  } else {
    customers.insert(query.known_customers.begin(), query.known_customers.end());
  }
  if (!query.customer_id && !query.customer_ids.empty()) {
    // Forced customers outside the batch belong to another batch.
    const std::set<std::string> batch(query.customer_ids.begin(), query.customer_ids.end());
    std::erase_if(customers, [&](const std::string& id) { return !batch.count(id); });
  }
  for (const auto& [metric, f] : fetched) {
    for (const auto& [customer, series] : f.by_customer) customers.insert(customer);
  }

  std::vector<UsageRecord> records;
  auto emit = [&](const std::string& customer, const char* metric,
                  const std::vector<PeriodQuantity>& quantities, double scale) {
    for (const auto& q : quantities) {
      records.push_back(UsageRecord{customer, metric, q.period, q.quantity * scale, q.complete});
    }
  };
  int series_index = 0;
  for (const auto& customer : customers) {
    for (const auto& spec : kCounters) {
      const auto resets = MarkerIndex(fetched[spec.reset_marker], customer);
      const auto restarts = spec.restart_marker
                                ? MarkerIndex(fetched[spec.restart_marker], customer)
                                : std::map<std::string, double>{};
      std::vector<CounterSample> samples;
      for (const auto& series : fetched[spec.counter].by_customer[customer]) {
        ++series_index;
        for (const auto& [time, value] : series.samples) {
          const auto key = ScrapeKey(series.labels, time);
          samples.push_back(CounterSample{
              time, value, Lookup(resets, key),
              spec.restart_marker ? Lookup(restarts, key) : std::nan(""), series_index});
        }
      }
      const CounterPolicy policy{2.0, query.max_gap_seconds, spec.partial_resets};
      // A family the customer's exporter does not serve (plugin mode only) gives no records,
      // rather than zeros that read as measured.
      if (spec.plugin_only && samples.empty()) continue;
      emit(customer, spec.usage_metric, CounterUsage(std::move(samples), periods, policy),
           spec.scale);
    }
    std::vector<GaugeSample> sizes;
    for (const auto& series : fetched[kSize].by_customer[customer]) {
      for (const auto& [time, value] : series.samples) sizes.push_back(GaugeSample{time, value});
    }
    emit(customer, "storage_byte_hours",
         GaugeIntegral(std::move(sizes), periods, query.max_gap_seconds), 1.0 / 3600);
  }
  return records;
}

std::set<std::string> CustomersWithData(const PrometheusClient& prometheus, std::int64_t from,
                                        std::int64_t to, double max_gap_seconds) {
  std::string names;
  for (const auto& spec : kCounters) names += std::string(names.empty() ? "" : "|") + spec.counter;
  names += std::string("|") + names::kDatabaseSize;
  const auto gap = static_cast<std::int64_t>(std::ceil(max_gap_seconds));
  const std::string promql = "group by (customer_id) (last_over_time({__name__=~\"" + names +
                             "\",customer_id!=\"\"}[" + std::to_string(to - from + 2 * gap) +
                             "s]))";
  std::set<std::string> customers;
  for (const auto& id : prometheus.InstantLabels(promql, "customer_id", to + gap)) {
    customers.insert(id);
  }
  return customers;
}

}  // namespace billing::provisioner
