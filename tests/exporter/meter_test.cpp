// The broker plugin's counting logic and its snapshot encoding, without a broker.
#include "meter.h"

#include <gtest/gtest.h>

#include "plugin_options.h"
#include "usage_snapshot.h"

namespace billing::plugin {
namespace {

const int kA = 0, kB = 0, kC = 0;  // only their addresses matter: they stand for connections

const ClientUsage* Find(const Snapshot& s, std::string_view id) {
  for (const auto& c : s.clients)
    if (!c.other && c.client_id == id) return &c;
  return nullptr;
}
const ClientUsage* Other(const Snapshot& s) {
  for (const auto& c : s.clients)
    if (c.other) return &c;
  return nullptr;
}

TEST(MessageUnitsTest, FiveKibibyteStepsAtLeastOne) {
  EXPECT_EQ(MessageUnits(0), 1u);
  EXPECT_EQ(MessageUnits(1), 1u);
  EXPECT_EQ(MessageUnits(5120), 1u);
  EXPECT_EQ(MessageUnits(5121), 2u);
  EXPECT_EQ(MessageUnits(10240), 2u);
  EXPECT_EQ(MessageUnits(10241), 3u);
}

TEST(MeterTest, CountsPerClientAndGroupWithTopicBytesAndUnits) {
  Meter meter({10, 1, 10, {}});
  meter.Connect(&kA, "dev-1", "alice", 1000);
  meter.Connect(&kB, "dev-2", std::nullopt, 1000);
  ASSERT_TRUE(meter.Publish(&kA, "devices/dev-1/t", 5000));  // 15 + 5000 bytes: 1 unit
  ASSERT_TRUE(meter.Publish(&kA, "devices/dev-1/t", 5106));  // 5121: 2 units
  ASSERT_TRUE(meter.Publish(&kB, "alerts/x", 0));            // 8: 1 unit
  const auto s = meter.Take(4000);
  const auto* a = Find(s, "dev-1");
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->has_username);
  EXPECT_EQ(a->username, "alice");
  EXPECT_EQ(a->usage.messages, 2u);
  EXPECT_EQ(a->usage.payload_bytes, 10106u);
  EXPECT_EQ(a->usage.topic_bytes, 30u);
  EXPECT_EQ(a->usage.units, 3u);
  EXPECT_EQ(a->usage.connection_ms, 3000u);  // still open: counted up to the snapshot
  EXPECT_EQ(a->connections_open, 1u);
  const auto* b = Find(s, "dev-2");
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(b->has_username);
  EXPECT_EQ(b->usage.units, 1u);
  EXPECT_EQ(s.total.messages, 3u);
  EXPECT_EQ(s.total.units, 4u);
  EXPECT_EQ(s.total.connection_ms, 6000u);
  EXPECT_EQ(s.connections_open, 2u);
  ASSERT_EQ(s.groups.size(), 2u);
  EXPECT_EQ(s.groups[0].group, "devices");
  EXPECT_EQ(s.groups[0].usage.messages, 2u);
  EXPECT_EQ(s.groups[1].group, "alerts");
}

TEST(MeterTest, ConnectionTimeAddsUpOverReconnectsAndStopsAtDisconnect) {
  Meter meter({10, 1, 10, {}});
  meter.Connect(&kA, "dev-1", std::nullopt, 0);
  meter.Disconnect(&kA, 1500);
  meter.Connect(&kB, "dev-1", std::nullopt, 10000);  // a new connection of the same device
  meter.Disconnect(&kB, 10250);
  meter.Disconnect(&kB, 20000);  // the broker reports a connection once; a repeat changes nothing
  const auto s = meter.Take(50000);
  ASSERT_EQ(s.clients.size(), 1u);
  EXPECT_EQ(s.clients[0].usage.connection_ms, 1750u);
  EXPECT_EQ(s.clients[0].connections_open, 0u);
  EXPECT_EQ(s.connections_open, 0u);
}

TEST(MeterTest, SameClientIdWithAnotherUserIsAnotherClient) {
  Meter meter({10, 1, 10, {}});
  meter.Connect(&kA, "dev-1", "alice", 0);
  meter.Connect(&kB, "dev-1", "bob", 0);
  meter.Connect(&kC, "dev-1", std::nullopt, 0);
  EXPECT_EQ(meter.Take(Meter::kRecordAfterMs).clients.size(), 3u);
}

// The password file decides after the plugin saw the CONNECT, and the broker closes a refused
// client at once: a stream of them with fresh client ids must not take the records of the
// tenant's devices. Their moments go to "other"; a device that publishes or stays gets its record.
TEST(MeterTest, ShortSilentConnectionsTakeNoRecordButTheirTimeStaysInTheTotal) {
  Meter meter({3, 1, 10, {}});
  const int refused[50] = {};
  for (int i = 0; i < 50; ++i) {
    meter.Connect(&refused[i], "scan-" + std::to_string(i), "guess", 100 * i);
    meter.Disconnect(&refused[i], 100 * i + 2);
  }
  meter.Connect(&kA, "dev-1", "device", 10000);
  ASSERT_TRUE(meter.Publish(&kA, "t", 1));       // publishing: a record at once
  meter.Connect(&kB, "dev-2", "device", 10000);  // silent, but stays
  meter.Connect(&kC, "dev-3", "device", 10000);  // silent, and leaves within the second
  // Not yet a second old: dev-2's time is not counted anywhere, so it can still go to its own
  // record without "other" ever going down.
  auto s = meter.Take(10500);
  EXPECT_EQ(s.connections_open, 3u);
  EXPECT_EQ(s.total.connection_ms, 100u + 500u);
  meter.Disconnect(&kC, 10900);
  s = meter.Take(11000);
  ASSERT_NE(Find(s, "dev-1"), nullptr);
  ASSERT_NE(Find(s, "dev-2"), nullptr);
  EXPECT_EQ(Find(s, "dev-2")->usage.connection_ms, 1000u);
  EXPECT_EQ(Find(s, "scan-0"), nullptr);
  EXPECT_EQ(Find(s, "dev-3"), nullptr);
  ASSERT_NE(Other(s), nullptr);
  EXPECT_EQ(Other(s)->usage.connection_ms, 50u * 2 + 900u);
  EXPECT_EQ(s.clients.size(), 3u);  // dev-1, dev-2 and "other": one named record still free
  EXPECT_EQ(s.total.connection_ms, 100u + 1000u + 1000u + 900u);
  EXPECT_EQ(s.connections_open, 2u);
  // A device that has a record keeps using it, even for a moment's silent connection.
  meter.Disconnect(&kB, 11000);
  meter.Connect(&kB, "dev-2", "device", 20000);
  meter.Disconnect(&kB, 20010);
  EXPECT_EQ(Find(meter.Take(30000), "dev-2")->usage.connection_ms, 1010u);
}

TEST(MeterTest, UnknownConnectionIsNotCountedUntilConnected) {
  Meter meter({10, 1, 10, {}});
  EXPECT_FALSE(meter.Publish(&kA, "a", 1));
  EXPECT_EQ(meter.Take(0).total.messages, 0u);
  meter.Disconnect(&kA, 5);  // never connected: ignored
  EXPECT_TRUE(meter.Take(0).clients.empty());
}

TEST(MeterTest, ClientsBeyondTheCapFoldIntoOtherAndTotalsStayExact) {
  Meter meter({2, 1, 10, {}});
  const int connections[5] = {};
  for (int i = 0; i < 5; ++i) {
    meter.Connect(&connections[i], "dev-" + std::to_string(i), std::nullopt, 0);
    ASSERT_TRUE(meter.Publish(&connections[i], "t", 10));
  }
  meter.Disconnect(&connections[4], 100);
  const auto s = meter.Take(100);
  EXPECT_EQ(s.clients.size(), 3u);  // two named, one overflow record
  const auto* other = Other(s);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->usage.messages, 3u);
  EXPECT_EQ(other->connections_open, 2u);
  EXPECT_EQ(other->usage.connection_ms, 300u);
  EXPECT_EQ(s.total.messages, 5u);
  EXPECT_EQ(s.total.connection_ms, 500u);
}

TEST(MeterTest, GroupsBeyondTheCapFoldIntoOther) {
  Meter meter({10, 2, 2, {}});
  meter.Connect(&kA, "d", std::nullopt, 0);
  for (const char* topic : {"a/1/x", "a/1/y", "b/2", "c/3/z", "other/x"})
    meter.Publish(&kA, topic, 1);
  const auto s = meter.Take(0);
  ASSERT_EQ(s.groups.size(), 3u);
  EXPECT_EQ(s.groups[0].group, "a/1");
  EXPECT_EQ(s.groups[0].usage.messages, 2u);
  EXPECT_EQ(s.groups[1].group, "b/2");
  EXPECT_TRUE(s.groups[2].other);  // a real group named "other" cannot be mistaken for it
  EXPECT_EQ(s.groups[2].usage.messages, 2u);
}

TEST(MeterTest, AGroupNamedOtherJoinsTheOverflowGroupEvenBelowTheCap) {
  Meter meter({10, 1, 5, {}});
  meter.Connect(&kA, "d", std::nullopt, 0);
  for (const char* topic : {"devices/1", "other/x", "other/y"}) meter.Publish(&kA, topic, 1);
  const auto s = meter.Take(0);
  ASSERT_EQ(s.groups.size(), 2u);  // never two groups the exporter would label "other"
  EXPECT_EQ(s.groups[0].group, "devices");
  EXPECT_TRUE(s.groups[1].other);
  EXPECT_EQ(s.groups[1].usage.messages, 2u);
}

Snapshot Sample() {
  Snapshot s;
  s.broker_start_unix_s = 1700000000;
  s.taken_unix_ms = 1700000005123;
  s.sequence = 42;
  s.interval_ms = 5000;
  s.total = {10, 20000, 300, 7, 123456};
  s.connections_open = 3;
  s.clients.push_back({"dev-1", "alice", true, false, 1, {6, 10000, 150, 4, 100000}});
  s.clients.push_back({"dev-2", "", false, false, 0, {3, 9000, 100, 2, 23456}});
  s.clients.push_back({"", "", false, true, 2, {1, 1000, 50, 1, 0}});
  s.groups.push_back({"devices", false, {9, 19000, 250, 6, 0}});
  s.groups.push_back({"", true, {1, 1000, 50, 1, 0}});
  return s;
}

TEST(UsageSnapshotTest, RoundTrips) {
  std::string encoded;
  EncodeSnapshot(Sample(), encoded);
  const auto decoded = DecodeSnapshot(encoded);
  ASSERT_TRUE(decoded.snapshot) << decoded.error;
  EXPECT_EQ(*decoded.snapshot, Sample());
  Snapshot big;
  big.total.messages = UINT64_MAX;
  encoded.clear();
  EncodeSnapshot(big, encoded);
  ASSERT_TRUE(DecodeSnapshot(encoded).snapshot);
  EXPECT_EQ(DecodeSnapshot(encoded).snapshot->total.messages, UINT64_MAX);
}

TEST(UsageSnapshotTest, EveryTruncationIsRejectedWithAReason) {
  std::string encoded;
  EncodeSnapshot(Sample(), encoded);
  for (std::size_t n = 0; n < encoded.size(); ++n) {
    const auto decoded = DecodeSnapshot(std::string_view(encoded).substr(0, n));
    EXPECT_FALSE(decoded.snapshot) << n;
    EXPECT_NE(decoded.error.find("at byte"), std::string::npos) << decoded.error;
  }
  EXPECT_NE(DecodeSnapshot(encoded + "x").error.find("trailing"), std::string::npos);
}

TEST(UsageSnapshotTest, RejectsOtherVersionsHugeCountsAndOverlongVarints) {
  std::string encoded;
  EncodeSnapshot(Sample(), encoded);
  std::string v2 = encoded;
  v2[3] = 2;
  EXPECT_NE(DecodeSnapshot(v2).error.find("version 2"), std::string::npos);
  EXPECT_NE(DecodeSnapshot("nope").error.find("magic"), std::string::npos);
  // A client count of 2^62 must fail before anything is reserved.
  Snapshot empty;
  std::string e;
  EncodeSnapshot(empty, e);
  std::string huge =
      e.substr(0, e.size() - 2) + std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x40", 9) + "\x00";
  EXPECT_NE(DecodeSnapshot(huge).error.find("client count"), std::string::npos);
  std::string overlong = "IBS\x01" + std::string(10, '\xff') + "\x01";
  EXPECT_NE(DecodeSnapshot(overlong).error.find("64 bits"), std::string::npos);
}

TEST(PluginOptionsTest, DefaultsAndValues) {
  auto parsed = ParsePluginOptions({});
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed.value().snapshot_topic, kDefaultSnapshotTopic);
  parsed = ParsePluginOptions({{"billing_snapshot_interval", "2"},
                               {"billing_max_clients", "50"},
                               {"billing_topic_group_levels", "2"},
                               {"billing_max_topic_groups", "7"},
                               {"billing_snapshot_topic", "$SYS/x"}});
  ASSERT_TRUE(parsed.ok());
  const auto& o = parsed.value();
  EXPECT_EQ(o.snapshot_interval, std::chrono::seconds(2));
  EXPECT_EQ(o.limits.max_clients, 50u);
  EXPECT_EQ(o.limits.topic_group_levels, 2u);
  EXPECT_EQ(o.limits.max_topic_groups, 7u);
  EXPECT_EQ(o.snapshot_topic, "$SYS/x");
}

TEST(PluginOptionsTest, ErrorsNameTheOptionAndTheFix) {
  auto message = [](std::string name, std::string value) {
    auto parsed = ParsePluginOptions({{name, value}});
    return parsed.ok() ? std::string("accepted") : parsed.error();
  };
  EXPECT_EQ(message("billing_snapshot_interval", "0"),
            "plugin_opt_billing_snapshot_interval '0' must be a whole number from 1 to 3600");
  EXPECT_NE(message("billing_max_clients", "12x").find("plugin_opt_billing_max_clients"),
            std::string::npos);
  EXPECT_NE(message("billing_snapshot_topic", "a/#").find("without '+' or '#'"), std::string::npos);
  EXPECT_NE(message("snapshot_interval", "5").find("is not an option"), std::string::npos);
}

}  // namespace
}  // namespace billing::plugin

namespace billing::plugin {
namespace {

TEST(MeterTest, UnmeteredClientsCountNothing) {
  MeterLimits limits{10, 1, 10, {"billing-exporter-c1"}};
  Meter meter(limits);
  meter.Connect(&kA, "billing-exporter-c1", std::nullopt, 0);
  meter.Connect(&kB, "dev-1", std::nullopt, 0);
  EXPECT_TRUE(meter.Publish(&kA, "x", 10));  // known, so not re-connected, but not counted
  EXPECT_TRUE(meter.Publish(&kB, "x", 10));
  const auto s = meter.Take(1000);
  ASSERT_EQ(s.clients.size(), 1u);
  EXPECT_EQ(s.total.messages, 1u);
  EXPECT_EQ(s.total.connection_ms, 1000u);
  EXPECT_EQ(s.connections_open, 1u);
  meter.Disconnect(&kA, 2000);
  EXPECT_EQ(meter.Take(2000).total.connection_ms, 2000u);
}

TEST(PluginOptionsTest, UnmeteredClientIdsAreACommaList) {
  auto parsed = ParsePluginOptions({{"billing_unmetered_client_ids", "a,,b-c"}});
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed.value().limits.unmetered_client_ids, (std::vector<std::string>{"a", "b-c"}));
}

}  // namespace
}  // namespace billing::plugin

namespace billing::plugin {
namespace {

TEST(PluginOptionsTest, ConnectionStart) {
  auto parsed = ParsePluginOptions({{"billing_connection_start", "first_publish"}});
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed.value().connect_from_auth);
  EXPECT_TRUE(ParsePluginOptions({}).value().connect_from_auth);
  parsed = ParsePluginOptions({{"billing_connection_start", "later"}});
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.error().find("plugin_opt_billing_connection_start"), std::string::npos);
}

}  // namespace
}  // namespace billing::plugin
