// The generated chart values of customers stored before they existed (generated_values.h): at
// `provisioner serve` start, each present deployment that lacks one gets it, once, as an upgrade
// (desired generation + 1), so that the reconciler applies the new Secret and the stack restarts
// with it. Without this, such a customer's values no longer render (the chart requires the broker
// users) and its reconciliation fails for good.
#pragma once

#include <cstddef>

#include "store.h"

namespace billing::provisioner {

struct BackfillReport {
  std::size_t completed = 0;  // deployments whose values were completed
  std::size_t skipped = 0;    // left for the next start: unreadable secrets, a concurrent change
};

/// Idempotent; safe with several provisioners starting at once (an upgrade guarded by the
/// generation it read). Throws what the store throws.
BackfillReport BackfillGeneratedValues(Store& store);

}  // namespace billing::provisioner
