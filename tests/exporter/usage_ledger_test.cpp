#include "usage_ledger.h"

#include <gtest/gtest.h>

#include <map>
#include <thread>

namespace billing::exporter {
namespace {

std::map<std::string, GroupCount> ByGroup(const std::vector<GroupCount>& counts) {
  std::map<std::string, GroupCount> out;
  for (const auto& c : counts) out[c.group] = c;
  return out;
}

TEST(UsageLedgerTest, GroupsByLeadingLevelsAndPatterns) {
  UsageLedger ledger({"devices/+/telemetry"}, 2, 100);
  ledger.Count("devices/d1/telemetry", 10);
  ledger.Count("devices/d2/telemetry", 20);
  ledger.Count("devices/d1/status", 5);
  ledger.Count("alerts/fire", 7);
  ledger.Count("alerts/fire/now", 1);
  auto groups = ByGroup(ledger.Snapshot());
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups["devices/+/telemetry"].messages, 2u);
  EXPECT_EQ(groups["devices/+/telemetry"].payload_bytes, 30u);
  EXPECT_EQ(groups["devices/d1"].messages, 1u);
  EXPECT_EQ(groups["alerts/fire"].messages, 2u);
  EXPECT_EQ(groups["alerts/fire"].payload_bytes, 8u);
}

TEST(UsageLedgerTest, CapFoldsNewGroupsIntoOtherAndTotalsStayExact) {
  UsageLedger ledger({}, 2, 100);
  std::uint64_t bytes = 0;
  for (int i = 0; i < 10000; ++i) {
    ledger.Count("devices/dev-" + std::to_string(i) + "/telemetry", static_cast<std::size_t>(i));
    bytes += static_cast<std::uint64_t>(i);
  }
  const auto counts = ledger.Snapshot();
  EXPECT_EQ(counts.size(), 101u);
  std::uint64_t messages = 0, payload = 0;
  for (const auto& c : counts) {
    messages += c.messages;
    payload += c.payload_bytes;
  }
  EXPECT_EQ(messages, 10000u);
  EXPECT_EQ(payload, bytes);
  EXPECT_EQ(ByGroup(counts)["other"].messages, 9900u);
  // A group that existed before the cap was reached keeps counting on its own.
  ledger.Count("devices/dev-0/x", 1);
  EXPECT_EQ(ByGroup(ledger.Snapshot())["devices/dev-0"].messages, 2u);
}

TEST(UsageLedgerTest, ATopicNamedOtherJoinsTheOtherGroup) {
  UsageLedger ledger({}, 1, 10);
  ledger.Count("other/thing", 3);
  ledger.Count("devices/x", 4);
  const auto groups = ByGroup(ledger.Snapshot());
  EXPECT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups.at("other").payload_bytes, 3u);
}

// A reader snapshotting while the writer counts sees monotonic values and, at the end, exact
// totals.
TEST(UsageLedgerTest, ConcurrentSnapshotsAreConsistentAndFinalTotalsExact) {
  UsageLedger ledger({}, 2, 50);
  constexpr int kMessages = 2'000'000;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < kMessages; ++i)
      ledger.Count(i % 3 ? "a/" + std::to_string(i % 200) : "b/x", 3);
    done = true;
  });
  std::map<std::string, GroupCount> last;
  bool monotonic = true;
  int snapshots = 0;
  while (!done || snapshots == 0) {
    for (const auto& c : ledger.Snapshot()) {
      monotonic = monotonic && c.messages >= last[c.group].messages &&
                  c.payload_bytes >= last[c.group].payload_bytes;
      last[c.group] = c;
    }
    ++snapshots;
  }
  writer.join();
  EXPECT_TRUE(monotonic);
  std::uint64_t total = 0, bytes = 0;
  for (const auto& c : ledger.Snapshot()) {
    total += c.messages;
    bytes += c.payload_bytes;
  }
  EXPECT_EQ(total, static_cast<std::uint64_t>(kMessages));
  EXPECT_EQ(bytes, 3u * kMessages);
}

}  // namespace
}  // namespace billing::exporter
