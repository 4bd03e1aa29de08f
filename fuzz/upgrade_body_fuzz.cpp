// The upgrade request body. Properties:
//  - ParseUpgradeRequest never throws; an error starts with the field at fault;
//  - an accepted body is, read independently, a JSON object of only values/license/license_key,
//    not license and license_key together, and the request carries exactly what it said: the
//    values object, the plan ([a-z0-9-], at most 32), the validity (1 to 3660 days), the license
//    key string. (Which values the provisioner owns is the API's check, against the chart.)
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz_check.h"
#include "signup.h"

namespace {
bool IsPlanName(const std::string& plan) {
  if (plan.empty() || plan.size() > 32 || plan.front() == '-') return false;
  for (const char c : plan) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto parsed = billing::provisioner::ParseUpgradeRequest(text);
  if (!parsed.ok()) {
    const auto colon = parsed.error().find(": ");
    FUZZ_CHECK(colon != std::string::npos, "an error starts with the field");
    return 0;
  }
  const auto& request = parsed.value();
  const auto body = nlohmann::json::parse(text, nullptr, false);
  FUZZ_CHECK(body.is_object() && !body.empty(), "a non-empty object");
  for (const auto& [key, value] : body.items()) {
    FUZZ_CHECK(key == "values" || key == "license" || key == "license_key", "known fields only");
  }
  FUZZ_CHECK(!(body.contains("license") && body.contains("license_key")), "not both licenses");
  FUZZ_CHECK(request.values.has_value() == body.contains("values"), "values when given");
  if (request.values) {
    FUZZ_CHECK(*request.values == body["values"] && request.values->is_object(), "the values");
  }
  FUZZ_CHECK(request.license.has_value() == body.contains("license"), "a new license when asked");
  if (request.license && request.license->plan) {
    const auto& plan = *request.license->plan;
    FUZZ_CHECK(IsPlanName(plan) && body["license"]["plan"] == plan, "the plan");
  }
  if (request.license && request.license->validity_days) {
    const auto days = *request.license->validity_days;
    FUZZ_CHECK(days >= 1 && days <= 3660 && body["license"]["validity_days"] == days,
               "the validity");
  }
  FUZZ_CHECK(request.license_key.has_value() == body.contains("license_key"), "the key if given");
  if (request.license_key) FUZZ_CHECK(body["license_key"] == *request.license_key, "the key");
  return 0;
}
