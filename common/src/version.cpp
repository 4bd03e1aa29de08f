#include "billing/common/version.h"

#include "billing_revision.h"

namespace billing::common {

std::string Version() { return BILLING_VERSION; }

std::string Revision() { return BILLING_REVISION; }

}  // namespace billing::common
