#include "billing/provisioner/ledger.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

namespace billing::provisioner {
namespace {

using nlohmann::json;

constexpr std::int64_t kTen = 1795600800;  // 2026-11-25T10:00:00Z

LedgerEntry Entry(std::int64_t sequence, int revision, LedgerEntryKind kind, double quantity,
                  double delta) {
  LedgerEntry e;
  e.sequence = sequence;
  e.customer_id = "acme-k3x9qa";
  e.metric = "mqtt_messages";
  e.period = {kTen, kTen + 3600};
  e.revision = revision;
  e.kind = kind;
  e.quantity = quantity;
  e.delta = delta;
  e.complete = true;
  e.final = kind != LedgerEntryKind::kFigure;
  e.recorded_at = kTen + 7200;
  return e;
}

TEST(LedgerQueryTest, SinceIsRequiredAndDigitsOnly) {
  const auto missing = ParseLedgerQuery(std::nullopt, std::nullopt, std::nullopt);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().rfind("since: required", 0), 0u) << missing.error();
  for (const char* bad : {"", "-1", "abc", "1e3", " 1", "1234567890123456789"}) {
    const auto parsed = ParseLedgerQuery(std::string(bad), std::nullopt, std::nullopt);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().rfind("since: ", 0), 0u) << parsed.error();
  }
  const auto ok = ParseLedgerQuery(std::string("42"), std::nullopt, std::nullopt);
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok.value().since, 42);
  EXPECT_EQ(ok.value().limit, kDefaultLedgerLimit);
  EXPECT_EQ(ok.value().format, LedgerFormat::kJson);
}

TEST(LedgerQueryTest, LimitAndFormatAreChecked) {
  for (const char* bad : {"0", "10001", "x", ""}) {
    const auto parsed = ParseLedgerQuery(std::string("0"), std::string(bad), std::nullopt);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().rfind("limit: an integer from 1 to 10000", 0), 0u) << parsed.error();
  }
  const auto limited = ParseLedgerQuery(std::string("0"), std::string("10000"), std::nullopt);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited.value().limit, 10000u);
  const auto csv = ParseLedgerQuery(std::string("0"), std::nullopt, std::string("csv"));
  ASSERT_FALSE(csv.ok());
  EXPECT_EQ(csv.error().rfind("format: use json or cloudevents", 0), 0u) << csv.error();
  const auto events = ParseLedgerQuery(std::string("0"), std::nullopt, std::string("cloudevents"));
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events.value().format, LedgerFormat::kCloudEvents);
}

TEST(LedgerCursorTest, NextIsTheLastEntryOrTheCursorItself) {
  EXPECT_EQ(NextCursor({}, 17), 17);
  EXPECT_EQ(NextCursor({Entry(18, 1, LedgerEntryKind::kFigure, 5, 5),
                        Entry(21, 2, LedgerEntryKind::kFinal, 5, 0)},
                       17),
            21);
  EXPECT_EQ(FormatCursor(21), "21");
}

TEST(LedgerJsonTest, EntriesCarryTheirCursorAndTheAnswerTheNextOne) {
  const auto body =
      json::parse(ToLedgerJson({Entry(7, 3, LedgerEntryKind::kAdjustment, 240, 120)}, 7));
  EXPECT_EQ(body["next"], "7");
  ASSERT_EQ(body["entries"].size(), 1u);
  const auto& e = body["entries"][0];
  EXPECT_EQ(e["cursor"], "7");
  EXPECT_EQ(e["customer_id"], "acme-k3x9qa");
  EXPECT_EQ(e["metric"], "mqtt_messages");
  EXPECT_EQ(e["period_start"], "2026-11-25T10:00:00Z");
  EXPECT_EQ(e["period_end"], "2026-11-25T11:00:00Z");
  EXPECT_EQ(e["revision"], 3);
  EXPECT_EQ(e["kind"], "adjustment");
  EXPECT_EQ(e["quantity"], 240);
  EXPECT_EQ(e["delta"], 120);
  EXPECT_EQ(e["final"], true);
  EXPECT_EQ(e["recorded_at"], "2026-11-25T12:00:00Z");
  EXPECT_EQ(json::parse(ToLedgerJson({}, 9)), (json{{"entries", json::array()}, {"next", "9"}}));
}

TEST(CloudEventsTest, EveryRequiredAttributeOfSpec10) {
  auto storage = Entry(4, 1, LedgerEntryKind::kFigure, 1.5, 1.5);
  storage.metric = "storage_byte_hours";
  const auto batch = json::parse(ToCloudEventsBatch({storage}));
  ASSERT_TRUE(batch.is_array());
  ASSERT_EQ(batch.size(), 1u);
  const auto& event = batch[0];
  EXPECT_EQ(event["specversion"], "1.0");
  EXPECT_EQ(event["id"],
            "acme-k3x9qa/storage_byte_hours/2026-11-25T10:00:00Z/2026-11-25T11:00:00Z/1");
  EXPECT_EQ(event["source"], "/iotistic/provisioner/usage");
  EXPECT_EQ(event["type"], "io.iotistic.usage.storage_byte_hours");
  EXPECT_EQ(event["subject"], "acme-k3x9qa");
  EXPECT_EQ(event["time"], "2026-11-25T10:00:00Z");
  EXPECT_EQ(event["datacontenttype"], "application/json");
  EXPECT_EQ(event["data"]["quantity"], 1.5);
  EXPECT_EQ(event["data"]["revision"], 1);
  EXPECT_EQ(event["data"]["kind"], "figure");
  EXPECT_EQ(std::string(kCloudEventsBatchContentType), "application/cloudevents-batch+json");
  EXPECT_EQ(ToCloudEventsBatch({}), "[]\n");
}

TEST(CloudEventsTest, TheIdIsStablePerRevisionAndDifferentAcrossRevisions) {
  const auto first = Entry(4, 1, LedgerEntryKind::kFigure, 120, 120);
  auto resent = first;
  resent.sequence = 99;  // read again later, or from a restored copy: the same event
  resent.recorded_at += 60;
  EXPECT_EQ(CloudEventId(first), CloudEventId(resent));
  std::set<std::string> ids;
  for (int revision = 1; revision <= 3; ++revision) {
    ids.insert(CloudEventId(Entry(revision, revision, LedgerEntryKind::kFigure, 1, 1)));
  }
  auto other_period = first;
  other_period.period = {kTen + 3600, kTen + 7200};
  ids.insert(CloudEventId(other_period));
  auto other_metric = first;
  other_metric.metric = "mqtt_bytes";
  ids.insert(CloudEventId(other_metric));
  EXPECT_EQ(ids.size(), 5u);
}

TEST(LedgerEntryKindTest, NamesRoundTrip) {
  for (const auto kind :
       {LedgerEntryKind::kFigure, LedgerEntryKind::kFinal, LedgerEntryKind::kAdjustment}) {
    EXPECT_EQ(ParseLedgerEntryKind(Name(kind)), kind);
  }
  EXPECT_EQ(ParseLedgerEntryKind("refund"), std::nullopt);
}

}  // namespace
}  // namespace billing::provisioner
