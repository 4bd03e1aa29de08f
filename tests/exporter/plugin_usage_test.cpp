// Plugin mode's families from a snapshot, and the rule that an older snapshot of the same broker
// lifetime never makes the counts go back.
#include "plugin_usage.h"

#include <gtest/gtest.h>

#include "billing/common/metric_names.h"

namespace billing::exporter {
namespace {

const prometheus::MetricFamily* Find(const std::vector<prometheus::MetricFamily>& families,
                                     const std::string& name) {
  for (const auto& f : families)
    if (f.name == name) return &f;
  return nullptr;
}

plugin::Snapshot Sample(std::uint64_t sequence, std::uint64_t messages) {
  plugin::Snapshot s;
  s.broker_start_unix_s = 1700000000;
  s.sequence = sequence;
  s.total = {messages, 5000, 60, 4, 90500};
  s.clients.push_back({"dev-1", "alice", true, false, 1, {messages - 1, 4000, 40, 3, 90000}});
  s.clients.push_back({"dev-2", "", false, false, 0, {1, 1000, 20, 1, 500}});
  s.groups.push_back({"devices", false, {messages, 5000, 60, 4, 0}});
  return s;
}

TEST(PluginFamiliesTest, TotalsUnderTheBillingNamesAndClientsOnlyWhenAsked) {
  const auto families = PluginFamilies(Sample(1, 3), {false, 10});
  EXPECT_EQ(Find(families, names::kBrokerPublishReceived)->metric[0].counter.value, 3);
  EXPECT_EQ(Find(families, names::kBrokerBytesReceived)->metric[0].counter.value, 5000);
  EXPECT_EQ(Find(families, names::kMqttMessageUnits)->metric[0].counter.value, 4);
  EXPECT_EQ(Find(families, names::kMqttConnectionSeconds)->metric[0].counter.value, 90.5);
  EXPECT_EQ(Find(families, names::kBrokerStartTime)->metric[0].gauge.value, 1700000000);
  EXPECT_EQ(Find(families, names::kMqttClientMessages), nullptr);

  const auto per_client = PluginFamilies(Sample(1, 3), {true, 1});
  const auto* clients = Find(per_client, names::kMqttClientMessages);
  ASSERT_NE(clients, nullptr);
  ASSERT_EQ(clients->metric.size(), 2u);  // dev-1, and the rest beyond the cap
  EXPECT_EQ(clients->metric[0].label[0].value, "dev-1");
  EXPECT_EQ(clients->metric[0].label[1].value, "alice");
  EXPECT_EQ(clients->metric[1].label[0].value, "");
  EXPECT_EQ(clients->metric[1].counter.value, 1);
  EXPECT_EQ(Find(per_client, names::kMqttClientConnectionSeconds)->metric[0].counter.value, 90);
}

TEST(PluginUsageTest, AnOlderSnapshotOfTheSameLifetimeIsIgnoredAndReconnectsForget) {
  PluginUsage usage;
  EXPECT_EQ(usage.Latest(), nullptr);
  std::string encoded;
  plugin::EncodeSnapshot(Sample(5, 10), encoded);
  EXPECT_EQ(usage.OnPayload(encoded), "");
  encoded.clear();
  plugin::EncodeSnapshot(Sample(4, 8), encoded);
  EXPECT_EQ(usage.OnPayload(encoded), "");
  ASSERT_NE(usage.Latest(), nullptr);
  EXPECT_EQ(usage.Latest()->total.messages, 10u);
  EXPECT_NE(usage.OnPayload("garbage").find("magic"), std::string::npos);
  usage.Forget();  // a new connection: nothing until a snapshot arrives on it
  EXPECT_EQ(usage.Latest(), nullptr);
  auto restarted = Sample(1, 2);
  restarted.broker_start_unix_s += 100;  // a new broker lifetime starts from a low sequence
  encoded.clear();
  plugin::EncodeSnapshot(restarted, encoded);
  EXPECT_EQ(usage.OnPayload(encoded), "");
  EXPECT_EQ(usage.Latest()->total.messages, 2u);
}

}  // namespace
}  // namespace billing::exporter
