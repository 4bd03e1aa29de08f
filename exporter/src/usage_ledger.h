// Per-topic-group message and payload-byte counts, written on the MQTT client's delivery thread at
// the broker's full rate and read by the sampler. The counting path takes no lock and allocates
// nothing once a group exists: a group is created at most once (bounded by the cap), its counters
// are 64-bit atomics with a single writer, and readers only load them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace billing::exporter {

struct GroupCount {
  std::string group;
  std::uint64_t messages = 0;
  std::uint64_t payload_bytes = 0;
};

class UsageLedger {
 public:
  static constexpr std::string_view kOtherGroup = "other";

  /// Groups are the configured patterns (matched first, in order) or else the first
  /// `group_levels` levels of the topic; at most `max_groups` groups besides "other".
  UsageLedger(std::vector<std::string> patterns, std::size_t group_levels, std::size_t max_groups);
  UsageLedger(const UsageLedger&) = delete;
  UsageLedger& operator=(const UsageLedger&) = delete;

  /// Counts one message. Single writer: call from one thread at a time (the MQTT client's thread).
  void Count(std::string_view topic, std::size_t payload_bytes);

  /// Every group seen so far with its counts. Safe from any thread, concurrently with Count().
  std::vector<GroupCount> Snapshot() const;

 private:
  struct Slot {
    std::string group;  // written once, before the slot is published through `published_`
    std::atomic<std::uint64_t> messages{0};
    std::atomic<std::uint64_t> payload_bytes{0};
  };
  struct TransparentHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  std::size_t SlotFor(std::string_view topic);  // writer only
  std::size_t NewSlot(std::string_view group);  // writer only

  const std::vector<std::string> patterns_;
  const std::size_t group_levels_;
  const std::size_t max_groups_;
  // Fixed capacity (max_groups, patterns included, + other) so that slots never move under a
  // reader.
  std::unique_ptr<Slot[]> slots_;
  std::size_t capacity_;
  std::atomic<std::size_t> published_{0};
  std::size_t other_slot_ = SIZE_MAX;  // writer only; created when first needed
  // Writer-only index from group name to slot; lookups with a string_view do not allocate.
  std::unordered_map<std::string, std::size_t, TransparentHash, std::equal_to<>> index_;
};

}  // namespace billing::exporter
