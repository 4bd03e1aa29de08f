// The usage job: raw samples from Prometheus -> usage records per customer, metric and period.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "billing/provisioner/usage.h"
#include "prometheus_client.h"

namespace billing::provisioner {

struct UsageQuery {
  std::int64_t from = 0;
  std::int64_t to = 0;
  std::int64_t period_seconds = 3600;
  std::optional<std::string> customer_id;  // all customers with data when unset
  // With customer_id unset and this non-empty: only these customers (one batch of the job), so
  // that one answer holds one batch's samples, never every customer's.
  std::vector<std::string> customer_ids;
  // With customer_id unset: customers billed even without any data (their records are then
  // incomplete zeros), e.g. every customer the provisioner has deployed.
  std::vector<std::string> known_customers;
  double max_gap_seconds = 300;  // samples further apart leave a period incomplete
};

/// Records for every customer (or the one asked for), metric and period, in that order. A customer
/// asked for with no data at all gets incomplete zero records, never silently nothing.
/// Throws std::runtime_error when Prometheus cannot be read.
std::vector<UsageRecord> ComputeUsage(const PrometheusClient& prometheus, const UsageQuery& query,
                                      const std::vector<Period>& periods);

/// The customers with any usage sample in (from - max_gap, to + max_gap]: label sets only, one
/// small answer however many samples there are. Throws std::runtime_error like ComputeUsage.
std::set<std::string> CustomersWithData(const PrometheusClient& prometheus, std::int64_t from,
                                        std::int64_t to, double max_gap_seconds);

}  // namespace billing::provisioner
