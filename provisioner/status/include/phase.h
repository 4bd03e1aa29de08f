// provisioner/status: a deployment's phases and desired states, as values instead of strings.
// Pure: std only. The names are what the store, the API and the metrics show.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace billing::provisioner {

enum class Phase { kPending, kDeploying, kReady, kFailed, kSuspended, kDeleting, kDeleted };
inline constexpr std::array<Phase, 7> kAllPhases = {
    Phase::kPending,   Phase::kDeploying, Phase::kReady,  Phase::kFailed,
    Phase::kSuspended, Phase::kDeleting,  Phase::kDeleted};

/// kSuspended: the first phase of a delete. The workloads are scaled to zero and the namespace
/// with its data volume kept until the purge (a second call, or the retention's end).
enum class DesiredState { kPresent, kSuspended, kAbsent };

inline constexpr std::string_view Name(Phase phase) {
  switch (phase) {
    case Phase::kPending:
      return "Pending";
    case Phase::kDeploying:
      return "Deploying";
    case Phase::kReady:
      return "Ready";
    case Phase::kFailed:
      return "Failed";
    case Phase::kSuspended:
      return "Suspended";
    case Phase::kDeleting:
      return "Deleting";
    case Phase::kDeleted:
      return "Deleted";
  }
  return "Pending";
}

inline constexpr std::string_view Name(DesiredState state) {
  switch (state) {
    case DesiredState::kPresent:
      return "present";
    case DesiredState::kSuspended:
      return "suspended";
    case DesiredState::kAbsent:
      return "absent";
  }
  return "present";
}

inline std::optional<Phase> ParsePhase(std::string_view name) {
  for (const Phase phase : kAllPhases) {
    if (Name(phase) == name) return phase;
  }
  return std::nullopt;
}

inline std::optional<DesiredState> ParseDesiredState(std::string_view name) {
  if (name == "present") return DesiredState::kPresent;
  if (name == "suspended") return DesiredState::kSuspended;
  if (name == "absent") return DesiredState::kAbsent;
  return std::nullopt;
}

}  // namespace billing::provisioner
