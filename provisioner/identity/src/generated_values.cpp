#include "generated_values.h"

#include <string>

#include "identity.h"

namespace billing::provisioner {
namespace {

// 24 random bytes: 32 base64url characters, over the chart's 16-character minimum.
constexpr std::size_t kPasswordBytes = 24;

// The string at `path` of `values`, or "" when absent or not a string.
std::string StringAt(const nlohmann::ordered_json& values,
                     const nlohmann::json::json_pointer& path) {
  const auto found = values.contains(path) ? values.at(path) : nlohmann::ordered_json();
  return found.is_string() ? found.get<std::string>() : std::string();
}

}  // namespace

nlohmann::ordered_json MissingGeneratedValues(const nlohmann::ordered_json& stored) {
  using Pointer = nlohmann::json::json_pointer;
  nlohmann::ordered_json patch = nlohmann::ordered_json::object();
  auto set = [&](const std::string& path, std::string value) {
    patch[nlohmann::ordered_json::json_pointer(path)] = std::move(value);
  };
  if (StringAt(stored, Pointer("/postgres/password")).empty()) {
    set("/postgres/password", RandomToken(kPasswordBytes));
  }
  for (const char* user : {"exporter", "device"}) {
    const std::string base = std::string("/mosquitto/auth/") + user;
    std::string password = StringAt(stored, Pointer(base + "/password"));
    if (password.empty()) {
      password = RandomToken(kPasswordBytes);
      set(base + "/password", password);
      set(base + "/passwordHash", MosquittoPasswordHash(password));
    } else if (StringAt(stored, Pointer(base + "/passwordHash")).empty()) {
      set(base + "/passwordHash", MosquittoPasswordHash(password));
    }
  }
  if (StringAt(stored, Pointer("/exporter/basicAuth/password")).empty()) {
    set("/exporter/basicAuth/password", RandomToken(kPasswordBytes));
  }
  return patch;
}

}  // namespace billing::provisioner
