// provisioner/status: a customer's deployment as stored (desired and observed state) and what
// one reconciliation step observed. Plain data: depends on nlohmann_json only.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "phase.h"

namespace billing::provisioner {

struct DeploymentRow {
  std::string customer_id;
  DesiredState desired_state = DesiredState::kPresent;
  std::int64_t desired_generation = 0;
  std::int64_t applied_generation = 0;
  nlohmann::ordered_json chart_values;
  Phase phase = Phase::kPending;
  std::string message;
  nlohmann::json components;
  int attempts = 0;
  std::string updated_at;  // RFC 3339 UTC
  /// Seconds since the last successful apply (applied_at, computed by the database so that the
  /// provisioner's and the database's clocks never meet); nullopt if none was recorded.
  std::optional<double> seconds_since_apply;
  /// Suspended deployments: when the purge is due (RFC 3339 UTC), else empty.
  std::string purge_after;
  /// Set when a sealed secret in chart_values could not be opened (altered, moved, or under a key
  /// that is not configured): says which value and why. The secret values are then absent from
  /// chart_values, which must not be rendered or written back.
  std::string secrets_error;
};

/// What a reconciliation step observed, written back in one statement.
struct Observation {
  Phase phase = Phase::kPending;
  std::string message;
  nlohmann::json components = nlohmann::json::object();
  std::optional<std::int64_t> applied_generation;  // set after a successful apply (> 0: also
                                                   // stamps applied_at); 0 forces the next apply
  int attempts = 0;
  double retry_after_seconds = 0;  // when the worker should look again; < 0: never (Deleted)
};

}  // namespace billing::provisioner
