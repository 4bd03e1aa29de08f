#include "usage_ledger.h"

#include "topic_groups.h"

namespace billing::exporter {

UsageLedger::UsageLedger(std::vector<std::string> patterns, std::size_t group_levels,
                         std::size_t max_groups)
    : patterns_(std::move(patterns)),
      group_levels_(group_levels),
      max_groups_(max_groups),
      slots_(std::make_unique<Slot[]>(max_groups + 1)),
      capacity_(max_groups + 1) {
  index_.reserve(capacity_);
}

std::size_t UsageLedger::NewSlot(std::string_view group) {
  const std::size_t slot = published_.load(std::memory_order_relaxed);
  slots_[slot].group.assign(group);
  // Release: a reader that sees the new count also sees the slot's name.
  published_.store(slot + 1, std::memory_order_release);
  index_.emplace(std::string(group), slot);
  return slot;
}

std::size_t UsageLedger::SlotFor(std::string_view topic) {
  std::string_view group;
  for (const auto& pattern : patterns_) {
    if (TopicMatches(pattern, topic)) {
      group = pattern;
      break;
    }
  }
  if (group.empty()) group = LeadingLevels(topic, group_levels_);
  if (const auto it = index_.find(group); it != index_.end()) return it->second;
  const bool full =
      published_.load(std::memory_order_relaxed) - (other_slot_ != SIZE_MAX) >= max_groups_;
  if (!full && group != kOtherGroup) return NewSlot(group);
  if (other_slot_ == SIZE_MAX) other_slot_ = NewSlot(kOtherGroup);
  return other_slot_;
}

void UsageLedger::Count(std::string_view topic, std::size_t payload_bytes) {
  Slot& slot = slots_[SlotFor(topic)];
  // Single writer: a relaxed load and store is exact and cheaper than an atomic read-modify-write.
  slot.messages.store(slot.messages.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  slot.payload_bytes.store(slot.payload_bytes.load(std::memory_order_relaxed) + payload_bytes,
                           std::memory_order_relaxed);
}

std::vector<GroupCount> UsageLedger::Snapshot() const {
  const std::size_t count = published_.load(std::memory_order_acquire);
  std::vector<GroupCount> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    out.push_back(GroupCount{slots_[i].group, slots_[i].messages.load(std::memory_order_relaxed),
                             slots_[i].payload_bytes.load(std::memory_order_relaxed)});
  }
  return out;
}

}  // namespace billing::exporter
