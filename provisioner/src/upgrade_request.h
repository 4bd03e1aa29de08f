// The body of POST /api/customers/{id}/deployment/upgrade: parsing and the checks that need
// nothing but the body. Pure (nlohmann::json only). What needs the chart (unknown values) or the
// store (the customer, its plan) is checked by the API afterwards.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "billing/provisioner/result.h"

namespace billing::provisioner {

struct UpgradeRequest {
  /// Chart values to merge over the stored ones: an object without the values the provisioner
  /// sets itself (customer, license, namespace, postgres.password) or that cannot change on a
  /// deployed instance (postgres.username, database, storageSize, storageClass).
  std::optional<nlohmann::json> values;
  /// `license` was given: issue a new key, with this plan (nullopt: the stored plan) and
  /// validity in days (nullopt: the default).
  bool new_license = false;
  std::optional<std::string> plan;
  std::optional<std::int64_t> validity_days;
  /// `license_key`: a key issued elsewhere, still to be verified.
  std::optional<std::string> license_key;
};

/// Parses `{"values"?, "license"?: {"plan"?, "validity_days"?}, "license_key"?}`. Errors name the
/// field and say how to fix it; every 400 the body alone can cause comes from here.
Result<UpgradeRequest> ParseUpgradeRequest(std::string_view body);

}  // namespace billing::provisioner
