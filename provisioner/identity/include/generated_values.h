// The chart values the provisioner generates for each customer, which no request may set: the
// database password, the broker's two users (a password each and its Mosquitto `$7$` hash) and
// the exporter's basic-auth password. Generated at signup, and for a customer stored before one
// of them existed (the broker users and the exporter's basic auth came with broker
// authentication), once, when `provisioner serve` starts.
#pragma once

#include <nlohmann/json.hpp>

namespace billing::provisioner {

/// What to merge (RFC 7396, `merge_patch`) into `stored` so that every generated value exists:
/// only the missing ones, newly generated; an empty object when nothing is missing. A user whose
/// password exists but whose hash does not gets the hash of that password, so clients that
/// already hold it keep working. Throws std::runtime_error if the CSPRNG fails.
nlohmann::ordered_json MissingGeneratedValues(const nlohmann::ordered_json& stored);

}  // namespace billing::provisioner
