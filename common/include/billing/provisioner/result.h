// The provisioner's name for the shared Result<T> and Error (billing/common/result.h).
#pragma once

#include "billing/common/result.h"

namespace billing::provisioner {
using common::Error;
using common::Ok;
using common::Result;
using common::Status;
}  // namespace billing::provisioner
