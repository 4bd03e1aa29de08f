// The MQTT counting path must not allocate per message (it runs at the broker's full rate). This
// binary replaces the global allocator with one that counts, so the claim is checked, not assumed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>

#include "broker_stats.h"
#include "usage_ledger.h"

namespace {
thread_local std::size_t allocations = 0;
}  // namespace

void* operator new(std::size_t size) {
  ++allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace billing::exporter {
namespace {

TEST(CountingPathTest, CountingKnownGroupsAllocatesNothing) {
  UsageLedger ledger({"devices/+/telemetry"}, 2, 3);
  const std::string topics[] = {"devices/d1/telemetry", "alerts/a1/x", "status/s/y", "more/m/z",
                                "overflow/o/w"};
  for (const auto& topic : topics) ledger.Count(topic, 1);  // creates the groups (and "other")
  const std::size_t before = allocations;
  for (int i = 0; i < 100000; ++i) ledger.Count(topics[i % 5], 100);
  EXPECT_EQ(allocations - before, 0u);
  std::uint64_t total = 0;
  for (const auto& group : ledger.Snapshot()) total += group.messages;
  EXPECT_EQ(total, 100005u);
}

TEST(CountingPathTest, SysMessagesAllocateNothing) {
  BrokerStats stats;
  const std::size_t before = allocations;
  for (int i = 0; i < 10000; ++i) {
    stats.OnSysMessage("$SYS/broker/publish/messages/received", "123456", true, 1000 + i);
    stats.OnSysMessage("$SYS/broker/uptime", "42 seconds", true, 1000 + i);
  }
  EXPECT_EQ(allocations - before, 0u);
}

// The counter itself: this test fails if the allocator replacement were not in effect.
TEST(CountingPathTest, TheAllocationCounterWorks) {
  const std::size_t before = allocations;
  auto p = std::make_unique<int>(1);
  EXPECT_EQ(allocations - before, 1u);
}

}  // namespace
}  // namespace billing::exporter
