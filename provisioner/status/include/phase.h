// provisioner/status: a deployment's phases and desired states, as values instead of strings.
// Pure: std only. The names are what the store, the API and the metrics show.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace billing::provisioner {

enum class Phase { kPending, kDeploying, kReady, kFailed, kDeleting, kDeleted };
inline constexpr std::array<Phase, 6> kAllPhases = {Phase::kPending,  Phase::kDeploying,
                                                    Phase::kReady,    Phase::kFailed,
                                                    Phase::kDeleting, Phase::kDeleted};

enum class DesiredState { kPresent, kAbsent };

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
    case Phase::kDeleting:
      return "Deleting";
    case Phase::kDeleted:
      return "Deleted";
  }
  return "Pending";
}

inline constexpr std::string_view Name(DesiredState state) {
  return state == DesiredState::kAbsent ? "absent" : "present";
}

inline std::optional<Phase> ParsePhase(std::string_view name) {
  for (const Phase phase : kAllPhases) {
    if (Name(phase) == name) return phase;
  }
  return std::nullopt;
}

inline std::optional<DesiredState> ParseDesiredState(std::string_view name) {
  if (name == "present") return DesiredState::kPresent;
  if (name == "absent") return DesiredState::kAbsent;
  return std::nullopt;
}

}  // namespace billing::provisioner
