// The broker plugin's hot path (one call per PUBLISH the broker receives) must not allocate. This
// binary replaces the global allocator with one that counts, so the claim is checked, not assumed.
#include <gtest/gtest.h>

#include "counting_allocator.h"
#include "meter.h"

namespace billing::plugin {
namespace {

TEST(PluginHotPathTest, PublishingAllocatesNothingOnceClientRecordsAndGroupsExist) {
  Meter meter({4, 2, 3, {}});
  const int connections[8] = {};
  for (int i = 0; i < 8; ++i) {
    meter.Connect(&connections[i], "dev-" + std::to_string(i), "user", 0);  // 4 beyond the cap
  }
  const std::string topics[] = {"devices/d1/telemetry", "alerts/a1/x", "status/s/y", "more/m/z",
                                "overflow/o/w"};
  for (const auto& topic : topics) meter.Publish(&connections[0], topic, 1);  // creates the groups
  // Each connection's first PUBLISH gives it its client record (at most once per client).
  for (const auto& connection : connections) meter.Publish(&connection, topics[0], 1);
  const std::size_t before = billing::testbed::AllocationsOnThisThread();
  for (int i = 0; i < 100000; ++i) {
    ASSERT_TRUE(meter.Publish(&connections[i % 8], topics[i % 5], 4000 + i % 3000));
  }
  EXPECT_EQ(billing::testbed::AllocationsOnThisThread() - before, 0u);
  EXPECT_EQ(meter.Take(0).total.messages, 100013u);
}

TEST(PluginHotPathTest, DisconnectAllocatesNothing) {
  Meter meter({4, 1, 3, {}});
  const int connections[8] = {};
  for (int i = 0; i < 8; ++i) meter.Connect(&connections[i], "d" + std::to_string(i), {}, 0);
  const std::size_t before = billing::testbed::AllocationsOnThisThread();
  for (int i = 0; i < 8; ++i) meter.Disconnect(&connections[i], 10);
  EXPECT_EQ(billing::testbed::AllocationsOnThisThread() - before, 0u);
}

// The counter itself: this test fails if the allocator replacement were not in effect.
TEST(PluginHotPathTest, TheAllocationCounterWorks) {
  const std::size_t before = billing::testbed::AllocationsOnThisThread();
  auto p = std::make_unique<int>(1);
  EXPECT_EQ(billing::testbed::AllocationsOnThisThread() - before, 1u);
}

}  // namespace
}  // namespace billing::plugin
