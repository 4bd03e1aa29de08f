// Prometheus' answer to the range query the usage job makes. Properties:
//  - ParseRangeAnswer throws nothing but std::runtime_error (the usage job's error path), with a
//    message naming the query;
//  - an accepted answer is a successful matrix without warnings, read completely: as many series
//    and samples as an independent reading of the JSON finds, with the same labels, times and
//    values (values read with strtod), each series in strictly increasing time.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "fuzz_check.h"
#include "prometheus_client.h"

namespace {
bool SameValue(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  const std::string query = "iotistic_fuzz_total{customer_id=\"c\"}[3600s]";
  std::vector<billing::provisioner::RawSeries> series;
  try {
    series = billing::provisioner::ParseRangeAnswer(body, query);
  } catch (const std::runtime_error& e) {
    FUZZ_CHECK(std::string(e.what()).find(query) != std::string::npos, "an error names the query");
    return 0;
  }  // anything else escapes and libFuzzer reports it

  const auto json = nlohmann::json::parse(body, nullptr, false);
  FUZZ_CHECK(json.is_object() && json.value("status", "") == "success", "a successful answer");
  FUZZ_CHECK(!json.contains("warnings") || json["warnings"].empty(), "no warnings");
  const auto& result = json.at("data").at("result");
  FUZZ_CHECK(result.size() == series.size(), "every series");
  std::size_t i = 0;
  for (const auto& item : result) {
    const auto& raw = series[i++];
    FUZZ_CHECK(raw.labels.size() == item.at("metric").size(), "every label");
    for (const auto& [name, value] : raw.labels) {
      FUZZ_CHECK(item.at("metric").at(name) == value, "the same label values");
    }
    const auto& values = item.at("values");
    FUZZ_CHECK(values.size() == raw.samples.size(), "every sample");
    std::size_t j = 0;
    for (const auto& pair : values) {
      const auto& [time, value] = raw.samples[j];
      FUZZ_CHECK(time == pair.at(0).get<double>(), "the same time");
      FUZZ_CHECK(j == 0 || time > raw.samples[j - 1].first, "strictly increasing times");
      const auto& text = pair.at(1).get_ref<const std::string&>();
      FUZZ_CHECK(SameValue(value, std::strtod(text.c_str(), nullptr)), "the same value");
      ++j;
    }
  }
  return 0;
}
