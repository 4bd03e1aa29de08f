// Reads raw samples from Prometheus' HTTP API (libcurl). Raw samples, not rate()/increase():
// billing needs the exact values at the period boundaries.
#pragma once

#include <cstddef>
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
  /// Answers larger than `max_response_bytes` are refused (an error, never a partial figure), so
  /// one query cannot take the provisioner past its memory limit.
  explicit PrometheusClient(std::string base_url,
                            std::size_t max_response_bytes = kDefaultMaxResponseBytes)
      : base_url_(std::move(base_url)), max_response_bytes_(max_response_bytes) {}
  static constexpr std::size_t kDefaultMaxResponseBytes = 64u << 20;

  /// Every sample of the series matching `selector` in (at - range_seconds, at]. Throws
  /// std::runtime_error saying what failed (unreachable, HTTP status, Prometheus' error, bad JSON).
  std::vector<RawSeries> RangeSamples(const std::string& selector, std::int64_t range_seconds,
                                      std::int64_t at) const;

  /// An instant query's JSON result, for reports (e.g. what increase() would say).
  std::string InstantQuery(const std::string& promql, std::int64_t at) const;

  /// The values of `label` over the series of an instant query's vector answer.
  std::vector<std::string> InstantLabels(const std::string& promql, const std::string& label,
                                         std::int64_t at) const;

 private:
  std::string Get(const std::string& path_and_query) const;
  std::string base_url_;
  std::size_t max_response_bytes_;
};

}  // namespace billing::provisioner
