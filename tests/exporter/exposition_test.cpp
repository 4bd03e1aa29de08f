#include "exposition.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <condition_variable>
#include <mutex>
#include <sstream>

#include "http_server.h"
#include "postgres_sample.h"
#include "sampler.h"
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
  Exposition exposition({{"customer_id", "c1"}}, "1.2.3", "0123456789ab");
  exposition.Register("postgres", std::chrono::seconds(15));
  const auto samples = ParseMetricsText(exposition.Current()->Text());
  EXPECT_EQ(FindValue(samples, "iotistic_exporter_build_info",
                      {{"version", "1.2.3"}, {"revision", "0123456789ab"}, {"customer_id", "c1"}}),
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
  const auto samples = ParseMetricsText(exposition.Current()->Text());
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

// While a sample is overdue, the collector's same-named families are replaced (up 0), the others
// stay as last sampled, nothing counts as a success or a failure, and the next Publish replaces
// it all again.
TEST(ExpositionTest, AnOverdueSampleReplacesOnlyTheSameNamedFamilies) {
  Exposition exposition({{"customer_id", "c1"}}, "v");
  exposition.Register("postgres", std::chrono::seconds(1));
  const auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  auto sample = OneGauge("iotistic_postgres_up", 1);
  sample.push_back(OneGauge("iotistic_postgres_table_rows", 42).front());
  exposition.Publish("postgres", sample, true, std::chrono::milliseconds(5), t);

  exposition.PublishOverdue("postgres", OneGauge("iotistic_postgres_up", 0));
  auto samples = ParseMetricsText(exposition.Current()->Text());
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_up", {{"customer_id", "c1"}}), 0);
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_table_rows"), 42);
  EXPECT_EQ(
      FindValue(samples, "iotistic_exporter_sample_errors_total", {{"collector", "postgres"}}), 0);
  EXPECT_EQ(FindValue(samples, "iotistic_exporter_last_sample_timestamp_seconds",
                      {{"collector", "postgres"}}),
            1700000000);
  // One family per name: the replacement is not served beside the old one.
  const auto text = exposition.Current()->Text();
  EXPECT_EQ(text.find("# TYPE iotistic_postgres_up"), text.rfind("# TYPE iotistic_postgres_up"));

  exposition.Publish("postgres", sample, true, std::chrono::milliseconds(5),
                     t + std::chrono::seconds(3));
  samples = ParseMetricsText(exposition.Current()->Text());
  EXPECT_EQ(FindValue(samples, "iotistic_postgres_up"), 1);
}

// Two intervals for a source that answers fast; a slow one gets one interval plus twice its last
// sample's duration, so a sample merely as slow as usual is never called overdue.
TEST(SamplerTest, OverdueAfterTwoIntervalsOrTwiceTheUsualDuration) {
  using std::chrono::milliseconds;
  EXPECT_EQ(Sampler::OverdueAfter(milliseconds(1000), milliseconds(20)), milliseconds(2000));
  EXPECT_EQ(Sampler::OverdueAfter(milliseconds(300), milliseconds(900)), milliseconds(2100));
}

// A collector whose second sample hangs until the test releases it, as a frozen database would.
class HangingCollector final : public Collector {
 public:
  const std::string& Name() const override { return name_; }
  std::chrono::milliseconds Interval() const override { return std::chrono::milliseconds(50); }
  SampleResult Sample() override {
    std::unique_lock lock(mutex_);
    if (samples_++ > 0) released_.wait(lock, [&] { return release_; });
    return {OneGauge("iotistic_postgres_up", 1), true, ""};
  }
  std::vector<prometheus::MetricFamily> OverdueFamilies() const override {
    return OneGauge("iotistic_postgres_up", 0);
  }
  void Release() {
    std::lock_guard lock(mutex_);
    release_ = true;
    released_.notify_all();
  }

 private:
  const std::string name_ = "postgres";
  std::mutex mutex_;
  std::condition_variable released_;
  int samples_ = 0;
  bool release_ = false;
};

TEST(SamplerTest, AHangingSampleIsServedAsDownUntilItFinishes) {
  Exposition exposition({}, "v");
  HangingCollector collector;
  exposition.Register(collector.Name(), collector.Interval());
  auto up = [&] {
    return FindValue(ParseMetricsText(exposition.Current()->Text()), "iotistic_postgres_up");
  };
  Sampler sampler(collector, exposition);
  // The first sample succeeds; the second hangs, and two intervals later up says so.
  EXPECT_TRUE(testbed::WaitFor([&] { return up() == 0; }, std::chrono::seconds(10)));
  collector.Release();
  EXPECT_TRUE(testbed::WaitFor([&] { return up() == 1; }, std::chrono::seconds(10)));
}

TEST(ExpositionTest, GzipPageIsTheSameText) {
  Exposition exposition({{"customer_id", "c"}}, "v");
  exposition.Register("a", std::chrono::seconds(1));
  exposition.Publish("a", OneGauge("metric_a", 42), true, std::chrono::seconds(0),
                     std::chrono::system_clock::now());
  const auto page = exposition.Current();
  EXPECT_EQ(testbed::Gunzip(page->gzip), page->Text());
  EXPECT_LT(page->gzip.size(), page->text_size);
}

// A collector's sample as the collectors make them: several families, labelled series, a counter,
// values that need the serialiser's number formatting, a label value that needs escaping.
std::vector<prometheus::MetricFamily> SampleFamilies(const std::string& prefix, int series) {
  prometheus::MetricFamily rows{
      prefix + "_rows", "Rows \"estimated\".", prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily inserted{
      prefix + "_inserted_total", "Rows inserted.", prometheus::MetricType::Counter, {}};
  for (int i = 0; i < series; ++i) {
    prometheus::ClientMetric gauge;
    gauge.label = {{"schema", "public"}, {"table", "sensor_readings_" + std::to_string(i)}};
    gauge.gauge.value = 1000.0 * i + 0.25;
    rows.metric.push_back(gauge);
    prometheus::ClientMetric counter;
    counter.label = {{"table", i % 7 == 0 ? "we\"ird\\name\n" : "t" + std::to_string(i)}};
    counter.counter.value = 1e15 + i;
    inserted.metric.push_back(counter);
  }
  return {rows, inserted};
}

// The page as the exporter served it before pages were kept in chunks: every collector's families
// in registration order, then the exporter's own, each series with the constant labels first,
// serialised in one call (gzip of that one string is GzipCompress(std::string), one deflate
// call over one buffer).
std::string ReferenceText(std::vector<std::vector<prometheus::MetricFamily>> collectors,
                          std::vector<prometheus::MetricFamily> own,
                          const std::vector<std::pair<std::string, std::string>>& constant_labels) {
  std::vector<prometheus::MetricFamily> all;
  for (auto& families : collectors) {
    for (auto& family : families) all.push_back(std::move(family));
  }
  for (auto& family : own) all.push_back(std::move(family));
  for (auto& family : all) {
    for (auto& metric : family.metric) {
      std::vector<prometheus::ClientMetric::Label> labels;
      for (const auto& [name, value] : constant_labels) labels.push_back({name, value});
      for (auto& label : metric.label) labels.push_back(label);
      metric.label = labels;
    }
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, all);
  return out.str();
}

prometheus::MetricFamily OwnFamily(const std::string& name, const std::string& help,
                                   prometheus::MetricType type,
                                   const std::vector<std::pair<std::string, double>>& values) {
  prometheus::MetricFamily family{name, help, type, {}};
  for (const auto& [collector, value] : values) {
    prometheus::ClientMetric metric;
    metric.label = {{"collector", collector}};
    if (type == prometheus::MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
    family.metric.push_back(metric);
  }
  return family;
}

TEST(ExpositionTest, ServedPageIsByteIdenticalToOneSerialisationOfEveryCollector) {
  const std::vector<std::pair<std::string, std::string>> constant_labels = {
      {"customer_id", "abc123"}, {"region", "eu"}};
  Exposition exposition(constant_labels, "9.9.9", "abc");
  exposition.Register("postgres", std::chrono::seconds(15));
  exposition.Register("empty", std::chrono::seconds(15));
  exposition.Register("mqtt", std::chrono::seconds(15));
  exposition.Register("never", std::chrono::seconds(15));
  const auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  // Big enough that the text spans several zlib windows and the plain page is several chunks of
  // different sizes; the old and new samples of "postgres" differ so a stale chunk would show.
  exposition.Publish("postgres", SampleFamilies("old_pg", 10), true, std::chrono::seconds(1), t);
  exposition.Publish("mqtt", SampleFamilies("mq", 50), false, std::chrono::milliseconds(125), t);
  exposition.Publish("empty", {}, true, std::chrono::milliseconds(500), t);
  exposition.Publish("postgres", SampleFamilies("pg", 3000), true, std::chrono::milliseconds(250),
                     t + std::chrono::seconds(15));

  const std::string expected = ReferenceText(
      {SampleFamilies("pg", 3000), {}, SampleFamilies("mq", 50)},
      {OwnFamily("iotistic_exporter_sample_duration_seconds",
                 "Seconds the collector's last sample took.", prometheus::MetricType::Gauge,
                 {{"postgres", 0.25}, {"empty", 0.5}, {"mqtt", 0.125}, {"never", 0}}),
       OwnFamily("iotistic_exporter_last_sample_timestamp_seconds",
                 "Unix time of the collector's last successful sample (0: none yet).",
                 prometheus::MetricType::Gauge,
                 {{"postgres", 1700000015}, {"empty", 1700000000}, {"mqtt", 0}, {"never", 0}}),
       OwnFamily("iotistic_exporter_sample_errors_total",
                 "Samples that failed since the exporter started.", prometheus::MetricType::Counter,
                 {{"postgres", 0}, {"empty", 0}, {"mqtt", 1}, {"never", 0}}),
       prometheus::MetricFamily{"iotistic_exporter_build_info",
                                "The exporter's version and git revision; always 1.",
                                prometheus::MetricType::Gauge,
                                {[] {
                                  prometheus::ClientMetric metric;
                                  metric.label = {{"revision", "abc"}, {"version", "9.9.9"}};
                                  metric.gauge.value = 1;
                                  return metric;
                                }()}}},
      constant_labels);
  ASSERT_GT(expected.size(), 200000u);
  const std::string expected_gzip = GzipCompress(expected);

  const auto page = exposition.Current();
  EXPECT_GT(page->chunks.size(), 1u);
  EXPECT_EQ(page->text_size, expected.size());
  EXPECT_TRUE(page->Text() == expected);  // not EXPECT_EQ: a diff of 400 KB helps nobody
  EXPECT_TRUE(page->gzip == expected_gzip);

  const int port = testbed::FreePort();
  HttpServer server(HttpOptions{"127.0.0.1:" + std::to_string(port), "", "", std::nullopt},
                    exposition);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  const auto plain = testbed::HttpGet(url);
  ASSERT_EQ(plain.status, 200) << plain.error;
  EXPECT_EQ(plain.headers.at("content-length"), std::to_string(expected.size()));
  EXPECT_EQ(plain.headers.count("content-encoding"), 0u);
  EXPECT_EQ(plain.body.size(), expected.size());
  EXPECT_TRUE(plain.body == expected);

  const auto gzip = testbed::HttpGet(url, {"Accept-Encoding: gzip"});
  ASSERT_EQ(gzip.status, 200) << gzip.error;
  EXPECT_EQ(gzip.headers.at("content-length"), std::to_string(expected_gzip.size()));
  EXPECT_EQ(gzip.headers.at("content-encoding"), "gzip");
  EXPECT_TRUE(gzip.body == expected_gzip);
  EXPECT_TRUE(testbed::Gunzip(gzip.body) == expected);

  for (const char* encoding : {"identity", "gzip"}) {
    const auto head =
        testbed::HttpRequest("HEAD", url, "", {std::string("Accept-Encoding: ") + encoding});
    ASSERT_EQ(head.status, 200) << head.error;
    EXPECT_EQ(
        head.headers.at("content-length"),
        std::to_string(std::string(encoding) == "gzip" ? expected_gzip.size() : expected.size()));
    EXPECT_TRUE(head.body.empty());
  }

  // Keep-alive: a second request on the same connection starts where the first body ended.
  const auto again = testbed::HttpGet(url);
  EXPECT_TRUE(again.body == expected);
}

TEST(ExpositionTest, SerializeTextMatchesOneCallOfTheTextSerializer) {
  const std::vector<std::pair<std::string, std::string>> constant_labels = {{"customer_id", "c"}};
  EXPECT_EQ(SerializeText(SampleFamilies("x", 20), constant_labels),
            ReferenceText({SampleFamilies("x", 20)}, {}, constant_labels));
  EXPECT_EQ(SerializeText(SampleFamilies("y", 3), {}),
            ReferenceText({SampleFamilies("y", 3)}, {}, {}));
  EXPECT_EQ(SerializeText({}, constant_labels), "");
}

TEST(ExpositionTest, GzipOfChunksIsGzipOfTheirConcatenation) {
  std::string big;
  for (int i = 0; big.size() < 300000; ++i) big += "line " + std::to_string(i * 7919 % 1000) + "\n";
  const std::vector<std::shared_ptr<const std::string>> chunks = {
      std::make_shared<const std::string>(big.substr(0, 70000)),
      std::make_shared<const std::string>(""),
      std::make_shared<const std::string>(big.substr(70000, 1)),
      std::make_shared<const std::string>(big.substr(70001))};
  EXPECT_TRUE(GzipCompress(chunks) == GzipCompress(big));
  EXPECT_EQ(testbed::Gunzip(GzipCompress(chunks)), big);
  EXPECT_EQ(testbed::Gunzip(GzipCompress(std::vector<std::shared_ptr<const std::string>>{})), "");
  EXPECT_EQ(testbed::Gunzip(GzipCompress(std::string())), "");
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
  EXPECT_EQ(FindValue(ParseMetricsText(held->Text()), "metric_a"), 1);
  EXPECT_EQ(FindValue(ParseMetricsText(exposition.Current()->Text()), "metric_a"), 2);
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
