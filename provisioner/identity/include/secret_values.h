// The chart values that are secrets, and sealing/opening them in a customer's values with a
// SecretBox. Pure (no I/O): the store calls these where chart values are written and read.
//
// kSecretChartValuePaths is THE list: every chart value that holds a tenant secret (a password,
// a key, a token) must be named here, dot-separated as in `--set`, or it is stored in clear.
#pragma once

#include <array>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "billing/provisioner/result.h"
#include "secret_box.h"

namespace billing::provisioner {

inline constexpr std::array<std::string_view, 7> kSecretChartValuePaths = {
    "postgres.password",  // the tenant database's password (generated at signup)
    "license.key",        // the tenant's license key (a signed JWT)
    // The broker's users (generated at signup) and their Mosquitto hashes: a hash is sealed too,
    // so that a dump offers nothing to guess against.
    "mosquitto.auth.exporter.password", "mosquitto.auth.exporter.passwordHash",
    "mosquitto.auth.device.password", "mosquitto.auth.device.passwordHash",
    "exporter.basicAuth.password",  // /metrics basic auth (generated at signup)
};

/// The associated data of a sealed chart value: "<customer id>/<path>", so that a value sealed
/// for one customer's field does not open in another field or for another customer.
std::string SecretContext(std::string_view customer_id, std::string_view path);

/// Seals every secret path that holds a string in clear (sealed ones stay as they are).
void SealSecretValues(const SecretBox& box, std::string_view customer_id,
                      nlohmann::ordered_json& values);

struct OpenedSecrets {
  std::size_t sealed = 0;  // values opened
  std::size_t clear = 0;   // values found in clear (written before a key was configured)
};
/// Opens every sealed secret path in place. `box` may be null (no key configured): then clear
/// values pass and a sealed one is an error. The error names the customer and path and says why
/// (unknown key id, does not authenticate); it never contains the value.
Result<OpenedSecrets> OpenSecretValues(const SecretBox* box, std::string_view customer_id,
                                       nlohmann::ordered_json& values);

struct ResealedSecrets {
  std::size_t current = 0;  // already under the current key: left byte for byte as they were
  std::size_t rotated = 0;  // under a previous key: opened and sealed again under the current
  std::size_t clear = 0;    // in clear: sealed under the current key
};
/// Puts every secret path under the box's current key (rotation, migration of clear rows).
Result<ResealedSecrets> ResealSecretValues(const SecretBox& box, std::string_view customer_id,
                                           nlohmann::ordered_json& values);

/// Key ids of the sealed secret values (for the start-up check and the rotation report), and the
/// number of secret values in clear.
struct SecretInventory {
  std::set<std::string> key_ids;
  std::size_t sealed = 0;
  std::size_t clear = 0;
};
void AddToInventory(const nlohmann::ordered_json& values, SecretInventory& inventory);

}  // namespace billing::provisioner
