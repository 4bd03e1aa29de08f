// common: the customer-id rule and the `customer-{id}` namespace name, shared by the exporter
// (CUSTOMER_ID), the provisioner (signup, API paths, render, usage) and the chart. Header-only.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace billing::common {

/// A customer id names the namespace `customer-{id}` (a DNS-1123 label: at most 63 characters,
/// so the id at most 54) and, in the chart, the StatefulSet `customer-{id}-postgres`, whose name
/// Kubernetes limits to 52 characters (its pods' controller-revision-hash label appends 11): 52 -
/// 18 = 34 is the limit every object name derived from the id fits in. The chart checks the same
/// (manifests/charts/customer-instance: _helpers.tpl and values.schema.json).
inline constexpr std::size_t kMaxCustomerIdLength = 34;

/// The rule in words, for error messages.
inline constexpr const char* kCustomerIdRule =
    "1-34 lowercase letters, digits and '-', starting and ending with a letter or digit";

/// A DNS-1123 label's characters (lowercase letters, digits, '-', alphanumeric at both ends);
/// the length is not checked here.
inline bool IsDns1123LabelText(std::string_view text) {
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (text.empty() || !alnum(text.front()) || !alnum(text.back())) return false;
  for (const char c : text) {
    if (!alnum(c) && c != '-') return false;
  }
  return true;
}

inline bool IsValidCustomerId(std::string_view id) {
  return id.size() <= kMaxCustomerIdLength && IsDns1123LabelText(id);
}

/// "customer-{id}": the namespace every object of the customer lives in.
inline std::string CustomerNamespace(std::string_view customer_id) {
  return "customer-" + std::string(customer_id);
}

}  // namespace billing::common
