// The exporter's configuration: a YAML file and the environment on top. The input is the YAML
// text, a NUL byte, then NAME=value lines for the environment. "PW" in the value of a password
// variable becomes a long marker. Properties:
//  - ParseConfig never throws: bad input is a ConfigError naming a field, with a message;
//  - no error quotes a password given in the environment;
//  - an accepted configuration keeps the invariants the rest of the exporter relies on, and the
//    environment wins over the file;
//  - the same input gives the same answer twice.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <variant>

#include "billing/common/duration.h"
#include "config.h"
#include "fuzz_check.h"

using billing::exporter::ExporterConfig;

namespace {
constexpr const char* kMarker = "Zq7SecretMarker9";

std::string Describe(const billing::common::Result<ExporterConfig>& result) {
  if (!result.ok()) return "error " + result.error();
  const auto& config = result.value();
  return "ok " + config.listen + " " + config.mqtt.url + " " + config.mqtt.client_id + " " +
         std::to_string(config.sample_interval.count()) +
         (config.postgres.url ? config.postgres.url->ConnectionString({}) : "");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const auto split = input.find('\0');
  const std::string yaml = input.substr(0, split);
  std::map<std::string, std::string> environment;
  if (split != std::string::npos) {
    std::size_t at = split + 1;
    while (at < input.size()) {
      auto end = input.find('\n', at);
      if (end == std::string::npos) end = input.size();
      const std::string line = input.substr(at, end - at);
      at = end + 1;
      const auto equals = line.find('=');
      if (equals == std::string::npos || equals == 0) continue;
      std::string value = line.substr(equals + 1);
      if (value.find('\0') != std::string::npos) continue;
      const std::string name = line.substr(0, equals);
      if (name.find("PASSWORD") != std::string::npos) {
        for (auto p = value.find("PW"); p != std::string::npos; p = value.find("PW", p)) {
          value.replace(p, 2, kMarker);
        }
      }
      environment[name] = value;
    }
  }
  const billing::exporter::EnvLookup env =
      [&environment](const std::string& name) -> std::optional<std::string> {
    const auto it = environment.find(name);
    if (it == environment.end()) return std::nullopt;
    return it->second;
  };

  const auto result = billing::exporter::ParseConfig(yaml, env);
  FUZZ_CHECK(Describe(billing::exporter::ParseConfig(yaml, env)) == Describe(result),
             "deterministic");
  if (!result.ok()) {
    const auto* error = &result.failure();
    if (error->field.empty()) std::fprintf(stderr, "error: %s\n", error->ToString().c_str());
    FUZZ_CHECK(!error->field.empty(), "an error names the field");
    FUZZ_CHECK(!error->message.empty(), "an error says what is wrong");
    bool secret_given = false;
    for (const auto& [name, value] : environment) {
      secret_given = secret_given || (name.find("PASSWORD") != std::string::npos &&
                                      value.find(kMarker) != std::string::npos);
    }
    if (secret_given) {
      FUZZ_CHECK(error->ToString().find(kMarker) == std::string::npos,
                 "an error never quotes a password");
    }
    return 0;
  }
  const auto& config = result.value();
  FUZZ_CHECK(config.postgres.url || !config.mqtt.url.empty(), "something to collect");
  FUZZ_CHECK(config.sample_interval.count() > 0, "a positive sample interval");
  FUZZ_CHECK(config.postgres.size_max_age.count() == 0 ||
                 config.postgres.size_max_age >= config.sample_interval,
             "size_max_age is 0 or at least sample_interval");
  FUZZ_CHECK(config.mqtt.qos >= 0 && config.mqtt.qos <= 2, "an MQTT QoS");
  FUZZ_CHECK(billing::exporter::ValidateListenAddress(config.listen).ok(), "a valid listen");
  FUZZ_CHECK(config.basic_auth_username.empty() == config.basic_auth_password.empty(),
             "basic auth has both parts or none");
  if (!config.mqtt.url.empty()) {
    FUZZ_CHECK(!config.mqtt.client_id.empty(), "a client id is always set");
    FUZZ_CHECK(!config.mqtt.topics.empty(), "at least one topic filter");
  }
  for (std::size_t i = 0; i < config.constant_labels.size(); ++i) {
    if (config.constant_labels[i].first == "customer_id") {
      FUZZ_CHECK(i == 0, "customer_id is the first label");
    }
  }
  if (const auto it = environment.find("MQTT_PASSWORD"); it != environment.end()) {
    FUZZ_CHECK(config.mqtt.password == it->second, "MQTT_PASSWORD wins over the file");
  }
  if (const auto it = environment.find("EXPORTER_BASIC_AUTH_PASSWORD"); it != environment.end()) {
    FUZZ_CHECK(config.basic_auth_password == it->second,
               "EXPORTER_BASIC_AUTH_PASSWORD wins over the file");
  }
  if (const auto it = environment.find("SAMPLE_INTERVAL"); it != environment.end()) {
    FUZZ_CHECK(billing::common::ParseDuration(it->second) == config.sample_interval,
               "SAMPLE_INTERVAL wins over the file");
  }
  return 0;
}
