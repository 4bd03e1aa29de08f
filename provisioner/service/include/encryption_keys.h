// The keys that seal the tenants' secrets in the store: reading the key files, the start-up check
// of what the store holds, and `provisioner rotate-encryption-key`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "billing/provisioner/result.h"
#include "secret_box.h"
#include "serve_config.h"

namespace billing::provisioner {

class Store;

/// Reads and validates the key files; null when none is configured (the opt-out). Errors name
/// the variable and the file, and never contain key material.
Result<std::shared_ptr<const SecretBox>> LoadSecretBox(const EncryptionConfig& config);

/// Refuses a store holding values this configuration cannot open (sealed under a key id that is
/// neither the current nor a previous key, or sealed while no key is configured) and logs what
/// else needs attention (values in clear, values under previous keys). Error: names the key ids
/// and the variables to set.
Status CheckStoredSecrets(Store& store, const SecretBox* box);

extern const char kRotateUsage[];
/// `provisioner rotate-encryption-key`: exit 0 done, 2 bad configuration or a value that does
/// not open (nothing written), 1 the store is unavailable.
int RotateEncryptionKey(const std::vector<std::string>& args);

}  // namespace billing::provisioner
