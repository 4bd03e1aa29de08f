// Conversions between the renderer's Value and nlohmann::json: objects go to the Kubernetes API
// as JSON, customer values are stored as jsonb. Map order is kept both ways.
#pragma once

#include <nlohmann/json.hpp>

#include "billing/provisioner/value.h"

namespace billing::provisioner {

/// nlohmann::ordered_json keeps insertion order, so an object's JSON matches its YAML rendering.
nlohmann::ordered_json ToJson(const Value& value);
/// Integers stay integers, other numbers become floats; order of members is kept.
Value FromJson(const nlohmann::ordered_json& json);

}  // namespace billing::provisioner
