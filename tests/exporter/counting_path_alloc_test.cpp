// The MQTT counting path must not allocate per message (it runs at the broker's full rate). This
// binary replaces the global allocator with one that counts, so the claim is checked, not assumed.
#include <gtest/gtest.h>

#include "broker_stats.h"
#include "counting_allocator.h"
#include "mqtt_wire.h"
#include "usage_ledger.h"

namespace billing::exporter {
namespace {

TEST(CountingPathTest, CountingKnownGroupsAllocatesNothing) {
  UsageLedger ledger({"devices/+/telemetry"}, 2, 3);
  const std::string topics[] = {"devices/d1/telemetry", "alerts/a1/x", "status/s/y", "more/m/z",
                                "overflow/o/w"};
  for (const auto& topic : topics) ledger.Count(topic, 1);  // creates the groups (and "other")
  const std::size_t before = billing::testbed::AllocationsOnThisThread();
  for (int i = 0; i < 100000; ++i) ledger.Count(topics[i % 5], 100);
  EXPECT_EQ(billing::testbed::AllocationsOnThisThread() - before, 0u);
  std::uint64_t total = 0;
  for (const auto& group : ledger.Snapshot()) total += group.messages;
  EXPECT_EQ(total, 100005u);
}

TEST(CountingPathTest, SysMessagesAllocateNothing) {
  BrokerStats stats;
  const std::size_t before = billing::testbed::AllocationsOnThisThread();
  for (int i = 0; i < 10000; ++i) {
    stats.OnSysMessage("$SYS/broker/publish/messages/received", "123456", true, 1000 + i);
    stats.OnSysMessage("$SYS/broker/uptime", "42 seconds", true, 1000 + i);
  }
  EXPECT_EQ(billing::testbed::AllocationsOnThisThread() - before, 0u);
}

// From bytes read off the socket to counts: splitting the stream and parsing each PUBLISH in place.
TEST(CountingPathTest, ReadingAndParsingPublishesAllocatesNothing) {
  std::string stream;
  for (int i = 0; i < 1000; ++i) {
    const std::string topic = "devices/d" + std::to_string(i % 50) + "/telemetry";
    const std::string payload(100 + i % 50, 'x');
    stream.push_back(0x30);
    const std::size_t length = 2 + topic.size() + payload.size();
    stream.push_back(static_cast<char>(0x80 | (length % 128)));
    stream.push_back(static_cast<char>(length / 128));
    stream.push_back(0);
    stream.push_back(static_cast<char>(topic.size()));
    stream += topic + payload;
  }
  mqtt::PacketReader reader;
  UsageLedger ledger({}, 2, 100);
  std::size_t counted = 0;
  auto read_stream = [&] {
    for (std::size_t at = 0; at < stream.size();) {
      auto space = reader.Space();
      const std::size_t n = std::min<std::size_t>({4096, space.size(), stream.size() - at});
      std::copy_n(stream.data() + at, n, space.data());
      at += n;
      reader.Commit(n);
      while (auto packet = reader.Next()) {
        const auto publish = mqtt::ParsePublish(*packet);
        ledger.Count(publish.topic, publish.payload_size);
        ++counted;
      }
    }
  };
  read_stream();  // the first sight of each of the 50 groups creates it
  const std::size_t before = billing::testbed::AllocationsOnThisThread();
  read_stream();
  EXPECT_EQ(billing::testbed::AllocationsOnThisThread() - before, 0u);
  EXPECT_EQ(counted, 2000u);
}

// The counter itself: this test fails if the allocator replacement were not in effect.
TEST(CountingPathTest, TheAllocationCounterWorks) {
  const std::size_t before = billing::testbed::AllocationsOnThisThread();
  auto p = std::make_unique<int>(1);
  EXPECT_EQ(billing::testbed::AllocationsOnThisThread() - before, 1u);
}

}  // namespace
}  // namespace billing::exporter
