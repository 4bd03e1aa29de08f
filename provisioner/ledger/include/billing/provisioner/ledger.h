// ledger: the usage ledger's entries as a billing system reads them: cursors, query parameters,
// the JSON answer and CloudEvents 1.0 (pure).
// May not depend on: libcurl, libpq/libpqxx, CivetWeb, or any I/O component (kube, store, api,
// service).
//
// DESIGN.md, "The usage ledger": every change of a usage figure a billing system must see (a new
// or recomputed figure, a figure becoming final, an adjustment) is one entry, numbered in commit
// order, so reading after a cursor sees every entry exactly once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "billing/provisioner/result.h"
#include "billing/provisioner/usage.h"

namespace billing::provisioner {

enum class LedgerEntryKind { kFigure, kFinal, kAdjustment };
std::string_view Name(LedgerEntryKind kind);  // "figure", "final", "adjustment"
std::optional<LedgerEntryKind> ParseLedgerEntryKind(std::string_view name);

struct LedgerEntry {
  std::int64_t sequence = 0;  // position in the ledger (commit order); the cursor after it
  std::string customer_id;
  std::string metric;
  Period period;
  int revision = 0;  // 1, 2, ... per (customer, metric, period)
  LedgerEntryKind kind = LedgerEntryKind::kFigure;
  double quantity = 0;  // the figure after this change: the record plus its adjustments
  double delta = 0;     // the change from the previous revision (the whole figure at revision 1)
  bool complete = false;
  bool final = false;
  std::int64_t recorded_at = 0;  // Unix seconds
};

enum class LedgerFormat { kJson, kCloudEvents };

inline constexpr std::size_t kDefaultLedgerLimit = 1000;
inline constexpr std::size_t kMaxLedgerLimit = 10000;

struct LedgerQuery {
  std::int64_t since = 0;
  std::size_t limit = kDefaultLedgerLimit;
  LedgerFormat format = LedgerFormat::kJson;
};

/// The query parameters of a ledger read (nullopt: absent). `since` is required (0: from the
/// start); the error names the parameter and says what to send instead.
Result<LedgerQuery> ParseLedgerQuery(const std::optional<std::string>& since,
                                     const std::optional<std::string>& limit,
                                     const std::optional<std::string>& format);

/// A cursor's text: the decimal sequence of the last entry read (0 before the first).
std::string FormatCursor(std::int64_t sequence);
/// The cursor to read on from: the last entry's sequence, or `since` when there is none.
std::int64_t NextCursor(const std::vector<LedgerEntry>& entries, std::int64_t since);

/// {"entries": [{...}], "next": "<cursor>"}, each entry with its own "cursor".
std::string ToLedgerJson(const std::vector<LedgerEntry>& entries, std::int64_t next);

/// CloudEvents' source of every usage event: constant, so that (source, id) stays the same for a
/// re-sent entry whichever replica or address serves it.
inline constexpr char kCloudEventsSource[] = "/iotistic/provisioner/usage";
inline constexpr char kCloudEventsBatchContentType[] = "application/cloudevents-batch+json";

/// "<customer>/<metric>/<period start>/<period end>/<revision>": the same for the same entry
/// on every read, different for every revision, so a downstream system deduplicates re-sends.
std::string CloudEventId(const LedgerEntry& entry);
/// The entries as a CloudEvents 1.0 JSON batch (an array of structured-mode events), the body
/// OpenMeter's ingest endpoint takes as is.
std::string ToCloudEventsBatch(const std::vector<LedgerEntry>& entries);

}  // namespace billing::provisioner
