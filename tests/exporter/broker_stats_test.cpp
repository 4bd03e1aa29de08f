#include "broker_stats.h"

#include <gtest/gtest.h>

#include "exposition.h"
#include "testbed.h"

namespace billing::exporter {
namespace {

using testbed::FindValue;

std::vector<testbed::MetricSample> Samples(const BrokerStats& stats) {
  return testbed::ParseMetricsText(SerializeText(stats.Families(), {}));
}

TEST(BrokerStatsTest, ParsesCountsAndUptime) {
  EXPECT_EQ(ParseSysCount("12345"), 12345u);
  EXPECT_EQ(ParseSysCount("18446744073709551615"), 18446744073709551615u);
  for (const char* bad : {"", "-1", "1.5", "12 ", " 12", "abc", "18446744073709551616"}) {
    EXPECT_EQ(ParseSysCount(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(ParseUptime("42 seconds"), 42u);
  for (const char* bad : {"42", "seconds", " seconds", "x seconds", "42 minutes"}) {
    EXPECT_EQ(ParseUptime(bad), std::nullopt) << bad;
  }
}

TEST(BrokerStatsTest, ExportsValuesExactlyAndIgnoresMalformedOnes) {
  BrokerStats stats;
  stats.OnSysMessage("$SYS/broker/uptime", "10 seconds", true, 1000);
  stats.OnSysMessage("$SYS/broker/publish/messages/received", "9007199254740993", true, 1000);
  stats.OnSysMessage("$SYS/broker/clients/connected", "7", false, 1000);
  stats.OnSysMessage("$SYS/broker/publish/bytes/received", "not a number", true, 1000);
  stats.OnSysMessage("$SYS/broker/uptime", "garbage", true, 1000);
  stats.OnSysMessage("$SYS/broker/load/bytes/received/1min", "12.5", true, 1000);  // not exported
  EXPECT_EQ(stats.malformed(), 2u);
  const auto samples = Samples(stats);
  EXPECT_EQ(FindValue(samples, "iotistic_mqtt_broker_publish_messages_received_total"),
            9007199254740992.0);
  EXPECT_EQ(FindValue(samples, "iotistic_mqtt_broker_clients_connected"), 7);
  EXPECT_EQ(FindValue(samples, "iotistic_mqtt_broker_bytes_received_total"), std::nullopt);
  EXPECT_EQ(FindValue(samples, "iotistic_mqtt_broker_start_time_seconds"), 990);
  // A later good value is taken as it comes.
  stats.OnSysMessage("$SYS/broker/publish/bytes/received", "100", true, 1001);
  EXPECT_EQ(FindValue(Samples(stats), "iotistic_mqtt_broker_bytes_received_total"), 100);
  stats.Forget();
  EXPECT_TRUE(Samples(stats).empty());
}

// After a reconnect, retained $SYS counters arrive at once but belong to whichever broker lifetime
// is current; they are served only together with that lifetime's start time.
TEST(BrokerStatsTest, CountersWaitForTheStartTimeOfTheirConnection) {
  BrokerStats stats;
  stats.OnSysMessage("$SYS/broker/uptime", "500 seconds", true, 1500);
  stats.OnSysMessage("$SYS/broker/publish/messages/received", "7000", true, 1500);
  EXPECT_EQ(FindValue(Samples(stats), "iotistic_mqtt_broker_start_time_seconds"), 1000);
  stats.Forget();  // the broker restarted; we reconnect
  stats.OnSysMessage("$SYS/broker/publish/messages/received", "12", false, 1600);  // retained
  stats.OnSysMessage("$SYS/broker/uptime", "5 seconds", false, 1600);              // retained
  EXPECT_TRUE(Samples(stats).empty());  // not "12" beside the old start time
  stats.OnSysMessage("$SYS/broker/uptime", "6 seconds", true, 1601);
  const auto samples = Samples(stats);
  EXPECT_EQ(FindValue(samples, "iotistic_mqtt_broker_publish_messages_received_total"), 12);
  EXPECT_EQ(FindValue(samples, "iotistic_mqtt_broker_start_time_seconds"), 1595);
}

// The uptime message shares the connection with the customer's traffic and can arrive seconds
// late: that must not move the start time (a moved start time is a reset, and bills the broker's
// whole counter again).
TEST(BrokerStatsTest, LateUptimeMessagesDoNotMoveTheStartTime) {
  BrokerStats stats;
  auto start = [&] { return FindValue(Samples(stats), "iotistic_mqtt_broker_start_time_seconds"); };
  stats.OnSysMessage("$SYS/broker/uptime", "100 seconds", true, 1100.2);
  EXPECT_EQ(start(), 1000);
  stats.OnSysMessage("$SYS/broker/uptime", "110 seconds", true, 1112.6);  // 2.4 s late
  EXPECT_EQ(start(), 1000);
  stats.OnSysMessage("$SYS/broker/uptime", "120 seconds", true, 1119.9);  // a better estimate
  EXPECT_EQ(start(), 999);
  stats.Forget();  // reconnect to the same broker; the first message after it is 6 s late
  stats.OnSysMessage("$SYS/broker/uptime", "200 seconds", true, 1205.0);
  EXPECT_EQ(start(), 999);
}

// A broker that lived only a few seconds and restarted while we were away: its successor's uptime
// need not be below the last one we saw, but it started after we last heard the old one.
TEST(BrokerStatsTest, AShortLivedBrokerReplacedWhileDisconnectedIsANewLifetime) {
  BrokerStats stats;
  auto start = [&] { return FindValue(Samples(stats), "iotistic_mqtt_broker_start_time_seconds"); };
  stats.OnSysMessage("$SYS/broker/uptime", "1 seconds", true, 1001.5);
  stats.OnSysMessage("$SYS/broker/uptime", "2 seconds", true, 1002.5);
  EXPECT_EQ(start(), 1000);
  stats.Forget();  // connection lost at ~1003; the new broker starts at 1003.5
  stats.OnSysMessage("$SYS/broker/publish/messages/received", "0", false, 1006.0);  // retained
  stats.OnSysMessage("$SYS/broker/uptime", "2 seconds", false, 1006.0);             // retained
  stats.OnSysMessage("$SYS/broker/uptime", "3 seconds", true, 1006.6);
  EXPECT_EQ(start(), 1003);
}

TEST(BrokerStatsTest, StartTimeIsStableAndChangesOnlyOnRestart) {
  BrokerStats stats;
  auto start = [&] { return FindValue(Samples(stats), "iotistic_mqtt_broker_start_time_seconds"); };
  // Retained (not live) uptimes are stale by up to one sys_interval: ignored.
  stats.OnSysMessage("$SYS/broker/uptime", "100 seconds", false, 5000.9);
  EXPECT_EQ(start(), std::nullopt);
  EXPECT_TRUE(Samples(stats).empty());
  stats.OnSysMessage("$SYS/broker/uptime", "100 seconds", true, 5100.2);
  EXPECT_EQ(start(), 5000);
  // One-second jitter of later estimates does not move it.
  stats.OnSysMessage("$SYS/broker/uptime", "110 seconds", true, 5110.9);
  stats.OnSysMessage("$SYS/broker/uptime", "120 seconds", true, 5121.3);
  EXPECT_EQ(start(), 5000);
  // Uptime going backwards is a restart, even right after the old start.
  stats.OnSysMessage("$SYS/broker/uptime", "3 seconds", true, 5124.0);
  EXPECT_EQ(start(), 5121);
  // Reconnecting to a broker that restarted meanwhile (uptime larger than before) is seen too.
  stats.Forget();
  stats.OnSysMessage("$SYS/broker/uptime", "50 seconds", true, 6000.0);
  EXPECT_EQ(start(), 5950);
}

}  // namespace
}  // namespace billing::exporter
