#include "topic_groups.h"

#include <gtest/gtest.h>

namespace billing::exporter {
namespace {

TEST(TopicFilterTest, Validation) {
  for (const char* good :
       {"#", "+", "devices/#", "devices/+/telemetry", "+/+/#", "a//b", "$SYS/broker/#"}) {
    EXPECT_TRUE(ValidateTopicFilter(good).ok()) << good;
  }
  for (const char* bad : {"", "devices/#/x", "dev#", "devices/+x", "a/b#", "#/a"}) {
    EXPECT_FALSE(ValidateTopicFilter(bad).ok()) << bad;
  }
}

TEST(TopicFilterTest, Matching) {
  EXPECT_TRUE(TopicMatches("#", "a/b/c"));
  EXPECT_TRUE(TopicMatches("devices/+/telemetry", "devices/d1/telemetry"));
  EXPECT_FALSE(TopicMatches("devices/+/telemetry", "devices/d1/status"));
  EXPECT_FALSE(TopicMatches("devices/+/telemetry", "devices/d1/telemetry/x"));
  EXPECT_FALSE(TopicMatches("devices/+", "devices"));
  EXPECT_TRUE(TopicMatches("devices/#", "devices"));  // '#' includes the parent level
  EXPECT_TRUE(TopicMatches("a/b", "a/b"));
  EXPECT_FALSE(TopicMatches("a/b", "a/b/c"));
  EXPECT_TRUE(TopicMatches("+/+", "/x"));  // empty levels are levels
  EXPECT_FALSE(TopicMatches("#", "$SYS/broker/uptime"));
  EXPECT_FALSE(TopicMatches("+/broker/uptime", "$SYS/broker/uptime"));
  EXPECT_TRUE(TopicMatches("$SYS/#", "$SYS/broker/uptime"));
}

TEST(TopicFilterTest, LeadingLevels) {
  EXPECT_EQ(LeadingLevels("devices/d1/telemetry", 1), "devices");
  EXPECT_EQ(LeadingLevels("devices/d1/telemetry", 2), "devices/d1");
  EXPECT_EQ(LeadingLevels("devices/d1/telemetry", 3), "devices/d1/telemetry");
  EXPECT_EQ(LeadingLevels("devices/d1/telemetry", 9), "devices/d1/telemetry");
  EXPECT_EQ(LeadingLevels("single", 2), "single");
}

TEST(MqttUrlTest, Validation) {
  for (const char* good : {"tcp://127.0.0.1:1883", "ssl://broker.example:8883",
                           "mqtt://mosquitto:1883", "mqtts://h:8883/", "tcp://[::1]:1883"}) {
    EXPECT_TRUE(ValidateMqttUrl(good).ok()) << good;
  }
  for (const char* bad : {"", "127.0.0.1:1883", "http://h:80", "tcp://h", "tcp://h:0",
                          "tcp://h:70000", "tcp://user:pw@h:1883"}) {
    EXPECT_FALSE(ValidateMqttUrl(bad).ok()) << bad;
  }
  EXPECT_EQ(ValidateMqttUrl("tcp://user:hunter2@h:1883").error().find("hunter2"),
            std::string::npos);
  // WebSockets are a broker listener the exporter cannot use: the error says which one to use.
  EXPECT_NE(ValidateMqttUrl("ws://h:9001/mqtt").error().find("tcp://host:1883"), std::string::npos);
}

}  // namespace
}  // namespace billing::exporter
