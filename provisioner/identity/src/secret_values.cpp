#include "secret_values.h"

namespace billing::provisioner {
namespace {

// The string at a dot-separated path, or null if the path is absent or not a string.
nlohmann::ordered_json* Find(nlohmann::ordered_json& values, std::string_view path) {
  nlohmann::ordered_json* node = &values;
  while (true) {
    const auto dot = path.find('.');
    const std::string key(path.substr(0, dot));
    if (!node->is_object()) return nullptr;
    const auto it = node->find(key);
    if (it == node->end()) return nullptr;
    node = &*it;
    if (dot == std::string_view::npos) break;
    path.remove_prefix(dot + 1);
  }
  return node->is_string() ? node : nullptr;
}

const nlohmann::ordered_json* Find(const nlohmann::ordered_json& values, std::string_view path) {
  return Find(const_cast<nlohmann::ordered_json&>(values), path);
}

std::string Where(std::string_view customer_id, std::string_view path) {
  return "chart value " + std::string(path) + " of customer " + std::string(customer_id);
}

}  // namespace

std::string SecretContext(std::string_view customer_id, std::string_view path) {
  return std::string(customer_id) + "/" + std::string(path);
}

void SealSecretValues(const SecretBox& box, std::string_view customer_id,
                      nlohmann::ordered_json& values) {
  for (const auto path : kSecretChartValuePaths) {
    auto* value = Find(values, path);
    if (value == nullptr || SecretBox::IsSealed(value->get_ref<const std::string&>())) continue;
    *value = box.Seal(value->get_ref<const std::string&>(), SecretContext(customer_id, path));
  }
}

Result<OpenedSecrets> OpenSecretValues(const SecretBox* box, std::string_view customer_id,
                                       nlohmann::ordered_json& values) {
  OpenedSecrets opened;
  for (const auto path : kSecretChartValuePaths) {
    auto* value = Find(values, path);
    if (value == nullptr) continue;
    const auto& text = value->get_ref<const std::string&>();
    if (!SecretBox::IsSealed(text)) {
      ++opened.clear;
      continue;
    }
    if (box == nullptr) {
      return Error{Where(customer_id, path) + ": sealed under key id " + SecretBox::KeyIdOf(text) +
                   ", but no encryption key is configured (PROVISIONER_ENCRYPTION_KEY_FILE)"};
    }
    auto plain = box->Open(text, SecretContext(customer_id, path));
    if (!plain.ok()) return Error{Where(customer_id, path) + ": " + plain.error()};
    *value = std::move(plain).value();
    ++opened.sealed;
  }
  return opened;
}

Result<ResealedSecrets> ResealSecretValues(const SecretBox& box, std::string_view customer_id,
                                           nlohmann::ordered_json& values) {
  ResealedSecrets resealed;
  for (const auto path : kSecretChartValuePaths) {
    auto* value = Find(values, path);
    if (value == nullptr) continue;
    const std::string text = value->get<std::string>();
    const auto context = SecretContext(customer_id, path);
    if (!SecretBox::IsSealed(text)) {
      *value = box.Seal(text, context);
      ++resealed.clear;
      continue;
    }
    auto plain = box.Open(text, context);
    if (!plain.ok()) return Error{Where(customer_id, path) + ": " + plain.error()};
    if (SecretBox::KeyIdOf(text) == box.current_key_id()) {
      ++resealed.current;
      continue;
    }
    *value = box.Seal(plain.value(), context);
    ++resealed.rotated;
  }
  return resealed;
}

void AddToInventory(const nlohmann::ordered_json& values, SecretInventory& inventory) {
  for (const auto path : kSecretChartValuePaths) {
    const auto* value = Find(values, path);
    if (value == nullptr) continue;
    const auto& text = value->get_ref<const std::string&>();
    if (SecretBox::IsSealed(text)) {
      ++inventory.sealed;
      inventory.key_ids.insert(SecretBox::KeyIdOf(text));
    } else {
      ++inventory.clear;
    }
  }
}

}  // namespace billing::provisioner
