#include "encryption_keys.h"

#include <cstdlib>
#include <iostream>
#include <optional>
#include <set>

#include "billing/common/file.h"
#include "billing/common/log.h"
#include "store.h"

namespace billing::provisioner {

using billing::common::Log;
using billing::common::LogLevel;

const char kRotateUsage[] =
    "usage: provisioner rotate-encryption-key\n"
    "  Seals every tenant secret in the store (chart values: database passwords, license keys)\n"
    "  under the current key, in one transaction: values under a previous key are opened and\n"
    "  sealed again, values in clear (written before a key was configured) are sealed, values\n"
    "  already under the current key are left as they are (running it twice changes nothing).\n"
    "Environment: DATABASE_URL, PROVISIONER_ENCRYPTION_KEY_FILE (the new, current key),\n"
    "  PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES (comma-separated: every key values may still be\n"
    "  sealed under). Rotation: give `provisioner serve` the new key and the old one as previous,\n"
    "  run this, then remove the old key from the configuration.\n";

namespace {

std::string KeyIds(const std::set<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + id;
  return out;
}

Result<std::string> ReadKey(const std::string& variable, const std::string& path) {
  const auto contents = common::ReadTextFile(path);
  if (!contents) return Error{variable + ": " + path + ": cannot read the file"};
  auto key = SecretBox::ParseKey(*contents);
  if (!key.ok()) return Error{variable + ": " + path + ": " + key.error()};
  return key;
}

}  // namespace

Result<std::shared_ptr<const SecretBox>> LoadSecretBox(const EncryptionConfig& config) {
  if (config.key_file.empty()) return std::shared_ptr<const SecretBox>();
  auto current = ReadKey("PROVISIONER_ENCRYPTION_KEY_FILE", config.key_file);
  if (!current.ok()) return Error{current.error()};
  std::vector<std::string> previous;
  for (const auto& file : config.previous_files) {
    auto key = ReadKey("PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES", file);
    if (!key.ok()) return Error{key.error()};
    previous.push_back(std::move(key).value());
  }
  auto box = SecretBox::Create(std::move(current).value(), std::move(previous));
  if (!box.ok()) {
    return Error{"PROVISIONER_ENCRYPTION_KEY_FILE, PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES: " +
                 box.error()};
  }
  return box;
}

Status CheckStoredSecrets(Store& store, const SecretBox* box) {
  const auto inventory = store.Secrets();
  std::set<std::string> unknown;
  std::set<std::string> previous;
  for (const auto& id : inventory.key_ids) {
    if (box == nullptr || !box->HasKey(id)) {
      unknown.insert(id);
    } else if (id != box->current_key_id()) {
      previous.insert(id);
    }
  }
  if (!unknown.empty()) {
    return Error{"PROVISIONER_ENCRYPTION_KEY_FILE: the store holds secrets sealed under key id " +
                 KeyIds(unknown) +
                 (box == nullptr ? std::string(", but no key is configured")
                                 : ", which is neither the current key (" + box->current_key_id() +
                                       ") nor in PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES") +
                 ": configure that key (as a previous key while rotating)"};
  }
  if (box == nullptr) {
    Log(LogLevel::kWarn, "serve",
        "PROVISIONER_ALLOW_UNENCRYPTED_SECRETS=true: the tenants' database passwords and license "
        "keys are stored IN CLEAR in the provisioner's database; whoever reads it (a dump, a "
        "backup) can use them. Set PROVISIONER_ENCRYPTION_KEY_FILE in production.");
    return Ok();
  }
  if (inventory.clear > 0) {
    Log(LogLevel::kWarn, "serve",
        std::to_string(inventory.clear) +
            " secret chart values are stored in clear (written before a key was configured); "
            "run `provisioner rotate-encryption-key` to seal them");
  }
  if (!previous.empty()) {
    Log(LogLevel::kInfo, "serve",
        "secrets sealed under previous key id " + KeyIds(previous) +
            " are still in the store; `provisioner rotate-encryption-key` moves them to " +
            box->current_key_id());
  }
  Log(LogLevel::kInfo, "serve",
      "tenant secrets are sealed with AES-256-GCM under key id " + box->current_key_id());
  return Ok();
}

int RotateEncryptionKey(const std::vector<std::string>& args) {
  for (const auto& arg : args) {
    if (arg == "-h" || arg == "--help") {
      std::cout << kRotateUsage;
      return 0;
    }
    std::cerr << "provisioner: unknown argument \"" << arg << "\"\n" << kRotateUsage;
    return 2;
  }
  const char* database_url = std::getenv("DATABASE_URL");
  if (database_url == nullptr || *database_url == '\0') {
    std::cerr << "provisioner: DATABASE_URL: required; the provisioner's PostgreSQL\n";
    return 2;
  }
  auto config = ParseEncryptionConfig(::getenv, false);
  if (!config.ok()) {
    std::cerr << "provisioner: " << config.error() << "\n";
    return 2;
  }
  auto box = LoadSecretBox(config.value());
  if (!box.ok()) {
    std::cerr << "provisioner: " << box.error() << "\n";
    return 2;
  }
  try {
    Store store(database_url, 1, box.value());
    auto report = store.ResealSecrets();
    if (!report.ok()) {
      std::cerr << "provisioner: nothing changed: " << report.error() << "\n";
      return 2;
    }
    const auto& r = report.value();
    std::cout << "rotate-encryption-key: " << r.values.rotated << " values sealed again and "
              << r.values.clear << " values in clear sealed, in " << r.customers << " customers; "
              << r.values.current << " were already under key id " << box.value()->current_key_id()
              << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "provisioner: DATABASE_URL: cannot use the store: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace billing::provisioner
