#include "billing/provisioner/usage.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace billing::provisioner {
namespace {

std::vector<Period> Periods(std::int64_t from, std::int64_t to, std::int64_t length) {
  auto periods = SplitPeriods(from, to, length);
  EXPECT_TRUE(periods.ok()) << periods.error();
  return periods.ok() ? periods.value() : std::vector<Period>{};
}

std::vector<double> Quantities(const std::vector<PeriodQuantity>& q) {
  std::vector<double> out;
  for (const auto& p : q) out.push_back(p.quantity);
  return out;
}

TEST(SplitPeriodsTest, AlignedRangesOnly) {
  EXPECT_EQ(Periods(3600, 4 * 3600, 3600).size(), 3u);
  const auto reversed = SplitPeriods(100, 50, 10);
  ASSERT_FALSE(reversed.ok());
  EXPECT_NE(reversed.error().find("must be after"), std::string::npos);
  const auto unaligned = SplitPeriods(105, 200, 10);
  ASSERT_FALSE(unaligned.ok());
  EXPECT_NE(unaligned.error().find("boundaries"), std::string::npos);
  EXPECT_FALSE(SplitPeriods(100, 100, 10).ok());
}

TEST(CounterUsageTest, DifferencesGoToThePeriodOfTheLaterSampleAndAddUp) {
  // Samples every 2 s from t=8 to t=40. The sample at t=10 closes the period before the first
  // one, so it is the first period's baseline.
  std::vector<CounterSample> samples;
  for (int t = 8; t <= 40; t += 2) samples.push_back({double(t), double(t * t), 0, 0});
  const auto usage = CounterUsage(samples, Periods(10, 40, 10), {2, 5});
  EXPECT_EQ(Quantities(usage),
            (std::vector<double>{20 * 20 - 10 * 10, 30 * 30 - 20 * 20, 40 * 40 - 30 * 30}));
  for (const auto& q : usage) EXPECT_TRUE(q.complete);
}

TEST(CounterUsageTest, UpstreamRestartCountsTheNewValueFromZeroEvenWhenLarger) {
  std::vector<CounterSample> samples = {
      {9, 1000, 500, 0},
      {12, 1100, 500, 0},
      {15, 1200, 500, 0},
      // The broker restarted (new start time) and had already counted 1500 by the next sample:
      // larger than before, still a reset.
      {18, 1500, 800, 0},
      {21, 1600, 800, 0}};
  const auto usage = CounterUsage(samples, Periods(10, 30, 10), {2, 5});
  EXPECT_EQ(Quantities(usage), (std::vector<double>{100 + 100 + 1500, 100}));
}

TEST(CounterUsageTest, ExporterRestartIsNotAResetAndSeriesMerge) {
  // Two exporter processes (different series) saw the same upstream; their start-time estimates
  // differ by a second.
  std::vector<CounterSample> samples = {{9, 100, 500.0, 0},  {11, 150, 500.0, 0},
                                        {13, 200, 500.0, 0}, {16, 260, 501.0, 0},
                                        {18, 300, 501.0, 0}, {20, 300, 501.0, 0}};
  const auto usage = CounterUsage(samples, Periods(10, 20, 10), {2, 5});
  EXPECT_EQ(Quantities(usage), (std::vector<double>{200}));
}

TEST(CounterUsageTest, DecreaseWithoutAResetRebasesWithoutBilling) {
  // A dropped table leaves the sum: nothing is billed for the drop, later inserts are.
  std::vector<CounterSample> samples = {
      {9, 1000, 0, 77}, {12, 1100, 0, 77}, {14, 400, 0, 77}, {16, 450, 0, 77}};
  EXPECT_EQ(Quantities(CounterUsage(samples, Periods(10, 20, 10), {2, 5})),
            (std::vector<double>{150}));
}

TEST(CounterUsageTest, PostgresCrashIsAResetButACleanRestartIsNot) {
  // Clean restart: the start time changes, the statistics survive (no decrease): not a reset.
  std::vector<CounterSample> clean = {{9, 1000, 0, 10}, {12, 1100, 0, 10}, {14, 1150, 0, 90}};
  EXPECT_EQ(Quantities(CounterUsage(clean, Periods(10, 20, 10), {2, 5})),
            (std::vector<double>{150}));
  // Crash: the start time changes and the statistics were discarded: counted from zero.
  std::vector<CounterSample> crash = {{9, 1000, 0, 10}, {12, 1100, 0, 10}, {14, 30, 0, 90}};
  EXPECT_EQ(Quantities(CounterUsage(crash, Periods(10, 20, 10), {2, 5})),
            (std::vector<double>{130}));
  // pg_stat_reset(): the reset time changes.
  std::vector<CounterSample> reset = {{9, 1000, 0, 10}, {12, 1100, 0, 10}, {14, 20, 5000, 10}};
  EXPECT_EQ(Quantities(CounterUsage(reset, Periods(10, 20, 10), {2, 5})),
            (std::vector<double>{120}));
}

TEST(CounterUsageTest, GapsAndMissingBaselinesMakePeriodsIncomplete) {
  std::vector<CounterSample> samples = {{11, 0, 0, 0},  {14, 10, 0, 0}, {19, 20, 0, 0},
                                        {21, 30, 0, 0}, {29, 40, 0, 0}, {33, 50, 0, 0},
                                        {37, 60, 0, 0}, {42, 61, 0, 0}};
  const auto usage = CounterUsage(samples, Periods(10, 40, 10), {2, 5});
  EXPECT_FALSE(usage[0].complete);  // no sample at or shortly before t=10
  EXPECT_FALSE(usage[1].complete);  // 21 -> 29 is a gap over 5 s
  EXPECT_TRUE(usage[2].complete);
  EXPECT_EQ(Quantities(usage), (std::vector<double>{20, 20, 20}));  // what was observed, flagged
  EXPECT_FALSE(CounterUsage({}, Periods(10, 20, 10), {2, 5})[0].complete);
}

// Regression cases from review: each billed a wrong amount before.
TEST(CounterUsageTest, AMarkerThatDriftsButStaysBeforeTheBaselineIsNoReset) {
  // The broker's start-time estimate moved by 3 s (a delayed uptime message): a reset would bill
  // the lifetime total again.
  std::vector<CounterSample> samples = {{5009, 5000000, 1000, 0},
                                        {5012, 5000100, 1000, 0},
                                        {5015, 5000200, 1003, 0},
                                        {5018, 5000300, 1000, 0}};
  EXPECT_EQ(Quantities(CounterUsage(samples, Periods(5010, 5020, 10), {2, 5})),
            (std::vector<double>{300}));
}

TEST(CounterUsageTest, APartialResetBillsOnlyTheVisibleIncreaseAndAsksForReview) {
  // One table's statistics reset moved the database's reset time; the sum over the other tables
  // is still large. Billing the whole value would bill a million rows for ten.
  std::vector<CounterSample> samples = {
      {9, 1000000, 0, 5}, {12, 1000000, 0, 5}, {15, 1000010, 14, 5}, {21, 1000010, 14, 5}};
  CounterPolicy policy{2, 10, true};
  const auto usage = CounterUsage(samples, Periods(10, 20, 10), policy);
  EXPECT_EQ(usage[0].quantity, 10);
  EXPECT_FALSE(usage[0].complete);
}

TEST(CounterUsageTest, LaggingCopiesFromAnotherSeriesAreNotBilledTwice) {
  // Two exporters (a rollout) observe the same counter, one 1 s behind the other.
  std::vector<CounterSample> samples = {{9, 100, 7, 0, 1},  {10, 90, 7, 0, 2},  {12, 130, 7, 0, 1},
                                        {13, 125, 7, 0, 2}, {15, 160, 7, 0, 1}, {16, 155, 7, 0, 2},
                                        {20, 170, 7, 0, 2}};
  EXPECT_EQ(Quantities(CounterUsage(samples, Periods(10, 20, 10), {2, 5})),
            (std::vector<double>{70}));
}

TEST(CounterUsageTest, MissingMarkersAndNonFiniteValuesNeverMakeAConfidentNumber) {
  const double nan = std::nan("");
  std::vector<CounterSample> no_marker = {
      {9, 100, 7, 0}, {12, 150, nan, 0}, {15, 160, 7, 0}, {20, 170, 7, 0}};
  EXPECT_FALSE(CounterUsage(no_marker, Periods(10, 20, 10), {2, 5})[0].complete);
  std::vector<CounterSample> with_nan = {
      {9, 100, 7, 0}, {12, nan, 7, 0}, {15, 160, 7, 0}, {20, 170, 7, 0}};
  const auto usage = CounterUsage(with_nan, Periods(10, 20, 10), {2, 5});
  EXPECT_EQ(usage[0].quantity, 70);
  EXPECT_TRUE(std::isfinite(
      GaugeIntegral({{9, 1}, {12, nan}, {15, 1}, {20, 1}}, Periods(10, 20, 10), 10)[0].quantity));
}

TEST(CounterUsageTest, APeriodIsCompleteOnlyOnceASampleAtOrAfterItsEndExists) {
  // Without it, a sample stamped before the end but not yet ingested could still be missing.
  std::vector<CounterSample> samples = {{9, 100, 7, 0}, {12, 150, 7, 0}, {16, 160, 7, 0}};
  EXPECT_FALSE(CounterUsage(samples, Periods(10, 20, 10), {2, 5})[0].complete);
  samples.push_back({21, 170, 7, 0});
  EXPECT_TRUE(CounterUsage(samples, Periods(10, 20, 10), {2, 5})[0].complete);
}

TEST(GaugeIntegralTest, TrapezoidsClippedToPeriodsAndSummedAcrossSeries) {
  // Two databases scraped together: 100 + 900 = 1000 throughout, samples every 3 s.
  std::vector<GaugeSample> samples;
  for (int t = 7; t <= 33; t += 3) {
    samples.push_back({double(t), 100});
    samples.push_back({double(t), 900});
  }
  const auto usage = GaugeIntegral(samples, Periods(10, 30, 10), 5);
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_DOUBLE_EQ(usage[0].quantity, 10000);
  EXPECT_DOUBLE_EQ(usage[1].quantity, 10000);
  EXPECT_TRUE(usage[0].complete && usage[1].complete);
  // A ramp from 0 at t=10 to 100 at t=20: area 500.
  const auto ramp = GaugeIntegral({{0, -100}, {10, 0}, {20, 100}}, Periods(10, 20, 10), 20);
  EXPECT_DOUBLE_EQ(ramp[0].quantity, 500);
  // A gap over max_gap is not integrated.
  const auto gap = GaugeIntegral({{9, 10}, {12, 10}, {19, 10}, {21, 10}}, Periods(10, 20, 10), 5);
  EXPECT_FALSE(gap[0].complete);
}

TEST(TimeTest, Rfc3339AndUnixSeconds) {
  EXPECT_EQ(ParseTime("2026-11-25T10:00:00Z"), 1795600800);
  EXPECT_EQ(ParseTime("2026-11-25T11:00:00+01:00"), 1795600800);
  EXPECT_EQ(ParseTime("1795600800"), 1795600800);
  EXPECT_EQ(FormatTime(1795600800), "2026-11-25T10:00:00Z");
  for (const char* bad : {"", "2026-11-25", "2026-02-30T00:00:00Z", "2026-11-25T25:00:00Z",
                          "yesterday", "2026-11-25T10:00:00.5Z", "-5"}) {
    EXPECT_EQ(ParseTime(bad), std::nullopt) << bad;
  }
}

TEST(OutputTest, CsvAndJsonCarryTheSameFields) {
  const std::vector<UsageRecord> records = {
      {"abc123", "mqtt_messages", {1795600800, 1795604400}, 12345, true},
      {"abc123", "storage_byte_hours", {1795600800, 1795604400}, 1.5, false}};
  EXPECT_EQ(ToCsv(records),
            "customer_id,metric,period_start,period_end,quantity,complete\n"
            "abc123,mqtt_messages,2026-11-25T10:00:00Z,2026-11-25T11:00:00Z,12345,true\n"
            "abc123,storage_byte_hours,2026-11-25T10:00:00Z,2026-11-25T11:00:00Z,1.500,false\n");
  const auto json = nlohmann::json::parse(ToJson(records));
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[0]["quantity"], 12345);
  EXPECT_EQ(json[1]["complete"], false);
  EXPECT_EQ(json[1]["period_end"], "2026-11-25T11:00:00Z");
}

}  // namespace
}  // namespace billing::provisioner

namespace billing::provisioner {
namespace {

// Connection time is billed in minutes from a seconds counter, so it keeps fractions; message
// units are whole.
TEST(OutputTest, ConnectionMinutesKeepFractionsUnitsAreWhole) {
  EXPECT_EQ(FormatQuantity("mqtt_connection_minutes", 12.5 / 60 * 60), "12.500");
  EXPECT_EQ(FormatQuantity("mqtt_message_units", 42), "42");
}

}  // namespace
}  // namespace billing::provisioner

namespace billing::provisioner {
namespace {

TEST(KnownCustomersTest, OnlyCustomersInTheStoreAreBilledTheOthersAreNamed) {
  const Period hour{1795600800, 1795604400};
  std::vector<UsageRecord> records = {{"acme", "mqtt_messages", hour, 10, true},
                                      {"ghost", "mqtt_messages", hour, 1e9, true},
                                      {"acme", "rows_inserted", hour, 5, true},
                                      {"phantom", "rows_inserted", hour, 7, false},
                                      {"ghost", "rows_inserted", hour, 3, true}};
  const auto split = KeepKnownCustomers(records, {"acme", "deleted-customer"});
  ASSERT_EQ(split.billed.size(), 2u);
  EXPECT_EQ(split.billed[0].metric, "mqtt_messages");
  EXPECT_EQ(split.billed[0].quantity, 10);
  EXPECT_EQ(split.billed[1].metric, "rows_inserted");
  for (const auto& record : split.billed) EXPECT_EQ(record.customer_id, "acme");
  EXPECT_EQ(split.unknown, (std::set<std::string>{"ghost", "phantom"}));
  EXPECT_TRUE(KeepKnownCustomers(records, {}).billed.empty());
}

}  // namespace
}  // namespace billing::provisioner
