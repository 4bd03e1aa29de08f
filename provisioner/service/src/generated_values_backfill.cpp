#include "generated_values_backfill.h"

#include "billing/common/log.h"
#include "generated_values.h"

namespace billing::provisioner {

using billing::common::Log;
using billing::common::LogLevel;

BackfillReport BackfillGeneratedValues(Store& store) {
  BackfillReport report;
  for (const auto& id : store.BillableCustomers()) {
    const auto deployment = store.Deployment(id);
    if (!deployment || deployment->desired_state != DesiredState::kPresent) continue;
    // Its sealed values did not open: they are absent here, and would look missing.
    if (!deployment->secrets_error.empty()) {
      ++report.skipped;
      continue;
    }
    const auto missing = MissingGeneratedValues(deployment->chart_values);
    if (missing.empty()) continue;
    auto values = deployment->chart_values;
    values.merge_patch(missing);
    const auto upgraded = store.RequestUpgrade(id, values, deployment->desired_generation);
    if (upgraded.outcome != Store::ChangeOutcome::kAccepted) {
      ++report.skipped;  // upgraded, deleted or completed by another provisioner meanwhile
      continue;
    }
    Log(LogLevel::kInfo, "serve",
        "customer " + id + ": generated the chart values it was stored without (generation " +
            std::to_string(upgraded.generation) + ")");
    ++report.completed;
  }
  return report;
}

}  // namespace billing::provisioner
