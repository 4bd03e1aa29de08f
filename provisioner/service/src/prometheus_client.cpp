#include "prometheus_client.h"

#include <curl/curl.h>

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

std::size_t Append(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

std::string Escape(const std::string& text) {
  // Since curl 7.82 the handle argument is unused.
  std::unique_ptr<char, CurlStringDeleter> escaped(
      curl_easy_escape(nullptr, text.c_str(), static_cast<int>(text.size())));
  return escaped ? std::string(escaped.get()) : std::string();
}

double ParseSampleValue(const nlohmann::json& value) {
  // Prometheus sends values as strings ("NaN", "+Inf" included).
  const auto text = value.get<std::string>();
  std::size_t used = 0;
  const double parsed = std::stod(text, &used);
  if (used != text.size()) throw std::runtime_error("bad sample value '" + text + "'");
  return parsed;
}

}  // namespace

std::string PrometheusClient::Get(const std::string& path_and_query) const {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) throw std::runtime_error("libcurl could not start");
  std::string body;
  const std::string url = base_url_ + path_and_query;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl.get());
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
  return body;
}

std::vector<RawSeries> PrometheusClient::RangeSamples(const std::string& selector,
                                                      std::int64_t range_seconds,
                                                      std::int64_t at) const {
  const std::string query = selector + "[" + std::to_string(range_seconds) + "s]";
  const std::string body =
      Get("/api/v1/query?query=" + Escape(query) + "&time=" + std::to_string(at));
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
    for (const auto& series : data.at("result")) {
      RawSeries raw;
      for (const auto& [name, value] : series.at("metric").items())
        raw.labels[name] = value.get<std::string>();
      for (const auto& pair : series.at("values")) {
        raw.samples.emplace_back(pair.at(0).get<double>(), ParseSampleValue(pair.at(1)));
      }
      out.push_back(std::move(raw));
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("unexpected answer from Prometheus for " + query + ": " + e.what());
  }
  return out;
}

std::string PrometheusClient::InstantQuery(const std::string& promql, std::int64_t at) const {
  return Get("/api/v1/query?query=" + Escape(promql) + "&time=" + std::to_string(at));
}

}  // namespace billing::provisioner
