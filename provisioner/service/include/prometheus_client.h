// Reads raw samples from Prometheus' HTTP API (libcurl). Raw samples, not rate()/increase():
// billing needs the exact values at the period boundaries.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace billing::provisioner {

struct RawSeries {
  std::map<std::string, std::string> labels;       // __name__ included
  std::vector<std::pair<double, double>> samples;  // (Unix seconds, value), oldest first
};

/// Parses the answer of an instant query for a range selector (a matrix) into its series. Pure.
/// Throws std::runtime_error saying what is wrong (Prometheus' error, warnings, which mean a
/// partial answer, a value that is not a number, samples out of time order, bad JSON); `query`
/// names the query in the message.
std::vector<RawSeries> ParseRangeAnswer(const std::string& body, const std::string& query);

class PrometheusClient {
 public:
  explicit PrometheusClient(std::string base_url) : base_url_(std::move(base_url)) {}

  /// Every sample of the series matching `selector` in (at - range_seconds, at]. Throws
  /// std::runtime_error saying what failed (unreachable, HTTP status, Prometheus' error, bad JSON).
  std::vector<RawSeries> RangeSamples(const std::string& selector, std::int64_t range_seconds,
                                      std::int64_t at) const;

  /// An instant query's JSON result, for reports (e.g. what increase() would say).
  std::string InstantQuery(const std::string& promql, std::int64_t at) const;

 private:
  std::string Get(const std::string& path_and_query) const;
  std::string base_url_;
};

}  // namespace billing::provisioner
