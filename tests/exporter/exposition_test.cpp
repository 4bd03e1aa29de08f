#include "exposition.h"

#include <gtest/gtest.h>

#include "http_server.h"
#include "postgres_sample.h"
#include "testbed.h"

namespace billing::exporter {
namespace {

using testbed::FindValue;
using testbed::ParseMetricsText;

std::vector<prometheus::MetricFamily> OneGauge(const std::string& name, double value) {
  prometheus::ClientMetric metric;
  metric.gauge.value = value;
  return {prometheus::MetricFamily{name, "help", prometheus::MetricType::Gauge, {metric}}};
}

TEST(ExpositionTest, FirstPageHasSelfMetricsBeforeAnySample) {
  Exposition exposition({{"customer_id", "c1"}}, "1.2.3");
  exposition.Register("postgres", std::chrono::seconds(15));
  const auto samples = ParseMetricsText(exposition.Current()->text);
  EXPECT_EQ(FindValue(samples, "iotistic_exporter_build_info",
                      {{"version", "1.2.3"}, {"customer_id", "c1"}}),
            1);
  EXPECT_EQ(
      FindValue(samples, "iotistic_exporter_sample_errors_total", {{"collector", "postgres"}}), 0);
  EXPECT_EQ(FindValue(samples, "iotistic_exporter_last_sample_timestamp_seconds",
                      {{"collector", "postgres"}}),
            0);
  EXPECT_FALSE(exposition.Health()[0].ready);
}

TEST(ExpositionTest, PublishReplacesTheCollectorsSeriesAndCountsErrors) {
  Exposition exposition({}, "v");
  exposition.Register("a", std::chrono::seconds(1));
  exposition.Register("b", std::chrono::seconds(1));
  const auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  exposition.Publish("a", OneGauge("metric_a", 1), true, std::chrono::milliseconds(250), t);
  exposition.Publish("b", OneGauge("metric_b", 2), true, std::chrono::milliseconds(5), t);
  exposition.Publish("a", OneGauge("metric_a", 3), false, std::chrono::milliseconds(5),
                     t + std::chrono::seconds(1));
  const auto samples = ParseMetricsText(exposition.Current()->text);
  EXPECT_EQ(FindValue(samples, "metric_a"), 3);
  EXPECT_EQ(FindValue(samples, "metric_b"), 2);
  EXPECT_EQ(FindValue(samples, "iotistic_exporter_sample_errors_total", {{"collector", "a"}}), 1);
  EXPECT_EQ(FindValue(samples, "iotistic_exporter_sample_errors_total", {{"collector", "b"}}), 0);
  // The failed sample does not move the last successful timestamp.
  EXPECT_EQ(
      FindValue(samples, "iotistic_exporter_last_sample_timestamp_seconds", {{"collector", "a"}}),
      1700000000);
  EXPECT_EQ(FindValue(samples, "iotistic_exporter_sample_duration_seconds", {{"collector", "a"}}),
            0.005);
}

TEST(ExpositionTest, GzipPageIsTheSameText) {
  Exposition exposition({{"customer_id", "c"}}, "v");
  exposition.Register("a", std::chrono::seconds(1));
  exposition.Publish("a", OneGauge("metric_a", 42), true, std::chrono::seconds(0),
                     std::chrono::system_clock::now());
  const auto page = exposition.Current();
  EXPECT_EQ(testbed::Gunzip(page->gzip), page->text);
  EXPECT_LT(page->gzip.size(), page->text.size());
}

TEST(ExpositionTest, ReadinessFollowsTheLastSuccess) {
  Exposition exposition({}, "v");
  exposition.Register("a", std::chrono::seconds(1));
  exposition.Publish("a", {}, true, std::chrono::seconds(0), std::chrono::system_clock::now());
  const auto now = Exposition::Clock::now();
  EXPECT_TRUE(exposition.Health(now)[0].ready);
  EXPECT_TRUE(exposition.Health(now + std::chrono::milliseconds(2900))[0].ready);
  EXPECT_FALSE(exposition.Health(now + std::chrono::seconds(4))[0].ready);
}

TEST(ExpositionTest, PagesHeldByAScrapeOutliveLaterSamples) {
  Exposition exposition({}, "v");
  exposition.Register("a", std::chrono::seconds(1));
  exposition.Publish("a", OneGauge("metric_a", 1), true, std::chrono::seconds(0),
                     std::chrono::system_clock::now());
  const auto held = exposition.Current();
  exposition.Publish("a", OneGauge("metric_a", 2), true, std::chrono::seconds(0),
                     std::chrono::system_clock::now());
  EXPECT_EQ(FindValue(ParseMetricsText(held->text), "metric_a"), 1);
  EXPECT_EQ(FindValue(ParseMetricsText(exposition.Current()->text), "metric_a"), 2);
}

}  // namespace
}  // namespace billing::exporter

namespace billing::exporter {
namespace {

TEST(AcceptsGzipTest, ReadsAcceptEncodingLikeHttpSays) {
  for (const char* yes : {"gzip", "gzip, deflate", "deflate, gzip;q=0.5", "br;q=1.0, gzip; q=0.1",
                          "*", "identity, *;q=1"}) {
    EXPECT_TRUE(AcceptsGzip(yes)) << yes;
  }
  for (const char* no :
       {"", "identity", "deflate, br", "gzip;q=0", "gzip; q=0", "gzip;q=0.000", "xgzip"}) {
    EXPECT_FALSE(AcceptsGzip(no)) << no;
  }
  EXPECT_FALSE(AcceptsGzip(nullptr));
}

}  // namespace
}  // namespace billing::exporter
