#include "prometheus_client.h"

#include <curl/curl.h>

#include <charconv>
#include <limits>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace billing::provisioner {
namespace {

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct CurlStringDeleter {
  void operator()(char* p) const { curl_free(p); }
};

struct Body {
  std::string text;
  std::size_t limit = 0;
  bool too_large = false;
};

std::size_t Append(char* data, std::size_t size, std::size_t count, void* out) {
  auto* body = static_cast<Body*>(out);
  if (body->text.size() + size * count > body->limit) {
    body->too_large = true;
    return 0;  // libcurl aborts the transfer
  }
  body->text.append(data, size * count);
  return size * count;
}

std::string Escape(const std::string& text) {
  // Since curl 7.82 the handle argument is unused.
  std::unique_ptr<char, CurlStringDeleter> escaped(
      curl_easy_escape(nullptr, text.c_str(), static_cast<int>(text.size())));
  return escaped ? std::string(escaped.get()) : std::string();
}

double ParseSampleValue(const nlohmann::json& value, const std::string& query) {
  // Prometheus sends values as strings: Go's strconv.FormatFloat, or "NaN", "+Inf", "-Inf".
  // from_chars, unlike stod, takes no leading space, hex or locale, and reports a bad value
  // instead of throwing std::invalid_argument past the caller's handler.
  if (!value.is_string()) {
    throw std::runtime_error("a sample value of " + query + " that is not a string");
  }
  const auto& text = value.get_ref<const std::string&>();
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (text == "+Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  double parsed = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  const auto [used, error] = std::from_chars(begin, end, parsed, std::chars_format::general);
  // from_chars also reads "inf" and "nan", which Prometheus never sends.
  const bool spelled_out = text.find_first_of("iInN") != std::string::npos;
  if (error != std::errc() || used != end || spelled_out) {
    throw std::runtime_error("bad sample value '" + text.substr(0, 64) + "' for " + query);
  }
  return parsed;
}

}  // namespace

std::string PrometheusClient::Get(const std::string& path_and_query) const {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) throw std::runtime_error("libcurl could not start");
  Body body{{}, max_response_bytes_, false};
  const std::string url = base_url_ + path_and_query;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl.get());
  if (body.too_large) {
    throw std::runtime_error("Prometheus at " + base_url_ + " answered with more than " +
                             std::to_string(max_response_bytes_ >> 20) +
                             " MiB; lower PROVISIONER_USAGE_BATCH (customers per query) or "
                             "PROVISIONER_USAGE_QUERY_PERIODS");
  }
  if (rc != CURLE_OK) {
    throw std::runtime_error("cannot reach Prometheus at " + base_url_ + ": " +
                             curl_easy_strerror(rc));
  }
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  // 400 and 422 carry Prometheus' own error in the JSON body.
  if (status != 200 && status != 400 && status != 422) {
    throw std::runtime_error("Prometheus at " + base_url_ + " answered HTTP " +
                             std::to_string(status));
  }
  return std::move(body.text);
}

std::vector<RawSeries> ParseRangeAnswer(const std::string& body, const std::string& query) {
  std::vector<RawSeries> out;
  try {
    const auto json = nlohmann::json::parse(body);
    if (json.at("status") != "success") {
      throw std::runtime_error("Prometheus refused the query " + query + ": " +
                               json.value("error", std::string("(no error text)")));
    }
    // Warnings mean a partial answer (e.g. a store that timed out): no figure may come from it.
    if (json.contains("warnings") && !json.at("warnings").empty()) {
      throw std::runtime_error(
          "Prometheus answered " + query +
          " with warnings (the data may be partial): " + json.at("warnings").dump());
    }
    const auto& data = json.at("data");
    if (data.at("resultType") != "matrix")
      throw std::runtime_error("expected a matrix for " + query);
    if (!data.at("result").is_array()) throw std::runtime_error("no result list for " + query);
    for (const auto& series : data.at("result")) {
      // Iterating a JSON array as if it were the label object would invent labels "0", "1", ...
      if (!series.is_object() || !series.at("metric").is_object() ||
          !series.at("values").is_array()) {
        throw std::runtime_error("a series of " + query + " without a label object and values");
      }
      RawSeries raw;
      for (const auto& [name, value] : series.at("metric").items())
        raw.labels[name] = value.get<std::string>();
      for (const auto& pair : series.at("values")) {
        if (!pair.is_array() || pair.size() != 2) {
          throw std::runtime_error("a sample of " + query + " that is not [time, value]");
        }
        const double time = pair.at(0).get<double>();
        // Billing reads the first and last sample of each period: the order must be the API's.
        if (!raw.samples.empty() && time <= raw.samples.back().first) {
          throw std::runtime_error("samples of " + query + " out of time order");
        }
        raw.samples.emplace_back(time, ParseSampleValue(pair.at(1), query));
      }
      out.push_back(std::move(raw));
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("unexpected answer from Prometheus for " + query + ": " + e.what());
  }
  return out;
}

std::vector<RawSeries> PrometheusClient::RangeSamples(const std::string& selector,
                                                      std::int64_t range_seconds,
                                                      std::int64_t at) const {
  const std::string query = selector + "[" + std::to_string(range_seconds) + "s]";
  const std::string body =
      Get("/api/v1/query?query=" + Escape(query) + "&time=" + std::to_string(at));
  return ParseRangeAnswer(body, query);
}

std::string PrometheusClient::InstantQuery(const std::string& promql, std::int64_t at) const {
  return Get("/api/v1/query?query=" + Escape(promql) + "&time=" + std::to_string(at));
}

std::vector<std::string> PrometheusClient::InstantLabels(const std::string& promql,
                                                         const std::string& label,
                                                         std::int64_t at) const {
  const std::string body = InstantQuery(promql, at);
  std::vector<std::string> values;
  try {
    const auto json = nlohmann::json::parse(body);
    if (json.at("status") != "success") {
      throw std::runtime_error("Prometheus refused the query " + promql + ": " +
                               json.value("error", std::string("(no error text)")));
    }
    for (const auto& series : json.at("data").at("result")) {
      const auto& metric = series.at("metric");
      if (metric.contains(label)) values.push_back(metric.at(label).get<std::string>());
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("unexpected answer from Prometheus for " + promql + ": " + e.what());
  }
  return values;
}

}  // namespace billing::provisioner
