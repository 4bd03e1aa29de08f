#include "billing/provisioner/ledger.h"

#include <array>
#include <nlohmann/json.hpp>
#include <utility>

namespace billing::provisioner {
namespace {

constexpr std::array<std::pair<LedgerEntryKind, std::string_view>, 3> kKindNames = {{
    {LedgerEntryKind::kFigure, "figure"},
    {LedgerEntryKind::kFinal, "final"},
    {LedgerEntryKind::kAdjustment, "adjustment"},
}};

// Digits only, at most 18 of them (fits an int64 whatever they are).
std::optional<std::int64_t> ParseDecimal(const std::string& text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  std::int64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

// The quantity keeps FormatQuantity's exact text form as a JSON number, as ToJson does.
nlohmann::json Quantity(const std::string& metric, double quantity) {
  return nlohmann::json::parse(FormatQuantity(metric, quantity + 0.0));
}

nlohmann::json EntryFields(const LedgerEntry& e) {
  return {{"customer_id", e.customer_id},
          {"metric", e.metric},
          {"period_start", FormatTime(e.period.start)},
          {"period_end", FormatTime(e.period.end)},
          {"revision", e.revision},
          {"kind", std::string(Name(e.kind))},
          {"quantity", Quantity(e.metric, e.quantity)},
          {"delta", Quantity(e.metric, e.delta)},
          {"complete", e.complete},
          {"final", e.final},
          {"recorded_at", FormatTime(e.recorded_at)},
          {"cursor", FormatCursor(e.sequence)}};
}

nlohmann::json CloudEvent(const LedgerEntry& e) {
  return {{"specversion", "1.0"},
          {"id", CloudEventId(e)},
          {"source", kCloudEventsSource},
          // One type per metric: a downstream meter (OpenMeter's) selects its events by type.
          {"type", "io.iotistic.usage." + e.metric},
          {"subject", e.customer_id},
          // The period's start, so that the event falls into the period's own window downstream;
          // when the entry was written is data.recorded_at.
          {"time", FormatTime(e.period.start)},
          {"datacontenttype", "application/json"},
          {"data", EntryFields(e)}};
}

}  // namespace

std::string_view Name(LedgerEntryKind kind) {
  for (const auto& [k, name] : kKindNames) {
    if (k == kind) return name;
  }
  return "figure";
}

std::optional<LedgerEntryKind> ParseLedgerEntryKind(std::string_view name) {
  for (const auto& [kind, n] : kKindNames) {
    if (n == name) return kind;
  }
  return std::nullopt;
}

Result<LedgerQuery> ParseLedgerQuery(const std::optional<std::string>& since,
                                     const std::optional<std::string>& limit,
                                     const std::optional<std::string>& format) {
  LedgerQuery query;
  if (!since) {
    return Error{
        "since: required: 0 to read the ledger from its start, or the \"next\" cursor of "
        "the previous answer"};
  }
  const auto cursor = ParseDecimal(*since);
  if (!cursor) {
    return Error{"since: not a cursor; send 0 or the \"next\" of a previous answer (digits only)"};
  }
  query.since = *cursor;
  if (limit) {
    const auto n = ParseDecimal(*limit);
    if (!n || *n < 1 || *n > static_cast<std::int64_t>(kMaxLedgerLimit)) {
      return Error{"limit: an integer from 1 to " + std::to_string(kMaxLedgerLimit) + " (default " +
                   std::to_string(kDefaultLedgerLimit) + ")"};
    }
    query.limit = static_cast<std::size_t>(*n);
  }
  const std::string format_name = format.value_or("json");
  if (format_name == "cloudevents") {
    query.format = LedgerFormat::kCloudEvents;
  } else if (format_name != "json") {
    return Error{"format: use json or cloudevents when reading the ledger with since"};
  }
  return query;
}

std::string FormatCursor(std::int64_t sequence) { return std::to_string(sequence); }

std::int64_t NextCursor(const std::vector<LedgerEntry>& entries, std::int64_t since) {
  return entries.empty() ? since : entries.back().sequence;
}

std::string ToLedgerJson(const std::vector<LedgerEntry>& entries, std::int64_t next) {
  auto array = nlohmann::json::array();
  for (const auto& e : entries) array.push_back(EntryFields(e));
  return nlohmann::json{{"entries", std::move(array)}, {"next", FormatCursor(next)}}.dump(2) + "\n";
}

std::string CloudEventId(const LedgerEntry& e) {
  return e.customer_id + "/" + e.metric + "/" + FormatTime(e.period.start) + "/" +
         FormatTime(e.period.end) + "/" + std::to_string(e.revision);
}

std::string ToCloudEventsBatch(const std::vector<LedgerEntry>& entries) {
  auto batch = nlohmann::json::array();
  for (const auto& e : entries) batch.push_back(CloudEvent(e));
  return batch.dump() + "\n";
}

}  // namespace billing::provisioner
