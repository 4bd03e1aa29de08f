#include "config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "billing/common/customer_id.h"
#include "billing/common/duration.h"
#include "topic_groups.h"

namespace billing::exporter {

using common::FormatDuration;
using common::ParseDuration;
namespace {

// Thrown inside this file only; ParseConfig turns it into a ConfigError value.
struct FieldError {
  std::string field;
  std::string message;
};

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string Child(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

void RequireMap(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap())
    throw FieldError{path.empty() ? "config" : path, "must be a mapping of keys to values"};
}

// Rejects keys this version does not know, so a typo never silently falls back
// to a default.
void CheckKeys(const YAML::Node& node, const std::string& path,
               const std::vector<std::string>& allowed) {
  RequireMap(node, path);
  for (const auto& entry : node) {
    if (!entry.first.IsScalar())
      throw FieldError{path.empty() ? "config" : path, "keys must be strings"};
    const auto key = entry.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      // An empty key ("": x) still needs a name in the message.
      throw FieldError{Child(path, key.empty() ? "\"\"" : key),
                       "unknown key; valid keys here are: " + Join(allowed)};
    }
  }
}

std::string ScalarText(const YAML::Node& node, const std::string& field, const char* expected) {
  if (!node.IsScalar()) throw FieldError{field, std::string("must be ") + expected};
  return node.Scalar();
}

std::string GetString(const YAML::Node& node, const std::string& field) {
  return ScalarText(node, field, "a string");
}

std::string GetNonEmpty(const YAML::Node& node, const std::string& field) {
  auto value = GetString(node, field);
  if (value.empty()) throw FieldError{field, "is empty; give a value or remove the key"};
  return value;
}

std::chrono::milliseconds ToDuration(const std::string& text, const std::string& field) {
  auto duration = ParseDuration(text);
  if (!duration) {
    throw FieldError{field, "'" + text +
                                "' is not a duration; write an integer with a "
                                "unit, e.g. 500ms, 15s, 5m, 1h"};
  }
  return *duration;
}

std::chrono::milliseconds GetDuration(const YAML::Node& node, const std::string& field) {
  return ToDuration(ScalarText(node, field, "a duration such as 15s"), field);
}

std::uint64_t GetUnsigned(const YAML::Node& node, const std::string& field) {
  const auto text = ScalarText(node, field, "a non-negative integer");
  std::uint64_t value = 0;
  const auto* begin = text.data();
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(begin, end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    throw FieldError{field, "'" + text + "' is not a non-negative integer"};
  }
  return value;
}

bool GetBool(const YAML::Node& node, const std::string& field) {
  const auto text = ScalarText(node, field, "true or false");
  if (text == "true") return true;
  if (text == "false") return false;
  throw FieldError{field, "'" + text + "' is not true or false"};
}

MqttSource ToMqttSource(const std::string& text, const std::string& field) {
  if (text == "subscription") return MqttSource::kSubscription;
  if (text == "plugin") return MqttSource::kPlugin;
  throw FieldError{field, "'" + text +
                              "' is not a source; write subscription (count by subscribing to the "
                              "topics) or plugin (read the broker plugin's snapshots)"};
}

std::vector<std::string> GetStringList(const YAML::Node& node, const std::string& field) {
  if (!node.IsSequence()) throw FieldError{field, "must be a list of strings"};
  std::vector<std::string> out;
  for (std::size_t i = 0; i < node.size(); ++i) {
    out.push_back(GetString(node[i], field + "[" + std::to_string(i) + "]"));
  }
  return out;
}

void RequireAtLeast(std::chrono::milliseconds value, std::chrono::milliseconds minimum,
                    const std::string& field) {
  if (value < minimum) throw FieldError{field, "must be at least " + FormatDuration(minimum)};
}

const std::regex& LabelNamePattern() {
  static const std::regex pattern("[a-zA-Z_][a-zA-Z0-9_]*");
  return pattern;
}

// The provisioner's rule (billing/common/customer_id.h): the id names the customer's namespace
// and objects, and labels every series.
void ValidateCustomerId(const std::string& id, const std::string& field) {
  if (!common::IsValidCustomerId(id)) {
    throw FieldError{field,
                     "'" + id + "' is not a valid customer id; use " + common::kCustomerIdRule};
  }
}

// Labels the exporter sets itself; a constant label of the same name would
// clash.
const std::vector<std::string>& ReservedLabels() {
  static const std::vector<std::string> names = {
      "customer_id", "schema", "table", "part", "database", "collector", "version", "topic_group"};
  return names;
}

QualifiedTable ParseQualifiedTable(const YAML::Node& node, const std::string& field) {
  QualifiedTable table;
  if (node.IsMap()) {
    CheckKeys(node, field, {"schema", "table"});
    table.schema = node["schema"] ? GetString(node["schema"], field + ".schema") : "public";
    if (!node["table"]) throw FieldError{field + ".table", "is required"};
    table.table = GetString(node["table"], field + ".table");
  } else {
    const auto text = ScalarText(node, field, "\"schema.table\" or {schema: ..., table: ...}");
    const auto dot = text.find('.');
    if (dot == std::string::npos) {
      table.schema = "public";
      table.table = text;
    } else {
      table.schema = text.substr(0, dot);
      table.table = text.substr(dot + 1);
    }
  }
  if (table.schema.empty() || table.table.empty()) {
    throw FieldError{field,
                     "needs a non-empty schema and table name; for names containing '.', "
                     "write {schema: ..., table: ...}"};
  }
  return table;
}

void ParsePostgres(const YAML::Node& node, PostgresConfig& pg, std::string& url_text) {
  const std::string path = "postgres";
  CheckKeys(node, path,
            {"url", "connect_timeout", "statement_timeout", "reconnect_backoff_max",
             "include_schemas", "exclude_schemas", "include_tables", "exclude_tables",
             "max_table_series", "size_max_age", "exact_count"});
  if (node["url"]) url_text = GetNonEmpty(node["url"], "postgres.url");
  if (node["connect_timeout"])
    pg.connect_timeout = GetDuration(node["connect_timeout"], "postgres.connect_timeout");
  if (node["statement_timeout"])
    pg.statement_timeout = GetDuration(node["statement_timeout"], "postgres.statement_timeout");
  if (node["reconnect_backoff_max"])
    pg.reconnect_backoff_max =
        GetDuration(node["reconnect_backoff_max"], "postgres.reconnect_backoff_max");
  if (node["include_schemas"])
    pg.include_schemas = GetStringList(node["include_schemas"], "postgres.include_schemas");
  if (node["exclude_schemas"])
    pg.exclude_schemas = GetStringList(node["exclude_schemas"], "postgres.exclude_schemas");
  if (node["include_tables"])
    pg.include_tables = GetStringList(node["include_tables"], "postgres.include_tables");
  if (node["exclude_tables"])
    pg.exclude_tables = GetStringList(node["exclude_tables"], "postgres.exclude_tables");
  if (node["max_table_series"]) {
    pg.max_table_series = GetUnsigned(node["max_table_series"], "postgres.max_table_series");
    if (pg.max_table_series < 1 || pg.max_table_series > 100000) {
      throw FieldError{"postgres.max_table_series", "must be between 1 and 100000"};
    }
  }
  if (node["size_max_age"])
    pg.size_max_age = GetDuration(node["size_max_age"], "postgres.size_max_age");
  if (const auto exact = node["exact_count"]) {
    const std::string exact_path = "postgres.exact_count";
    CheckKeys(exact, exact_path, {"tables", "interval", "timeout"});
    if (const auto tables = exact["tables"]) {
      if (!tables.IsSequence())
        throw FieldError{exact_path + ".tables", "must be a list of tables"};
      for (std::size_t i = 0; i < tables.size(); ++i) {
        pg.exact_count_tables.push_back(
            ParseQualifiedTable(tables[i], exact_path + ".tables[" + std::to_string(i) + "]"));
      }
    }
    if (exact["interval"])
      pg.exact_count_interval = GetDuration(exact["interval"], exact_path + ".interval");
    if (exact["timeout"])
      pg.exact_count_timeout = GetDuration(exact["timeout"], exact_path + ".timeout");
  }
  RequireAtLeast(pg.connect_timeout, std::chrono::seconds(1), "postgres.connect_timeout");
  RequireAtLeast(pg.statement_timeout, std::chrono::milliseconds(100),
                 "postgres.statement_timeout");
  RequireAtLeast(pg.reconnect_backoff_max, std::chrono::milliseconds(100),
                 "postgres.reconnect_backoff_max");
  RequireAtLeast(pg.exact_count_interval, std::chrono::seconds(1), "postgres.exact_count.interval");
  RequireAtLeast(pg.exact_count_timeout, std::chrono::milliseconds(100),
                 "postgres.exact_count.timeout");
}

void ParseMqtt(const YAML::Node& node, MqttConfig& mqtt) {
  CheckKeys(
      node, "mqtt",
      {"url", "username", "password", "ca_file", "client_id", "topics", "shared_group", "qos",
       "topic_group_levels", "topic_group_patterns", "max_topic_groups", "reconnect_backoff_max",
       "source", "plugin_topic", "per_client_series", "max_client_series", "broker_max_inflight"});
  if (node["broker_max_inflight"]) {
    mqtt.broker_max_inflight = GetUnsigned(node["broker_max_inflight"], "mqtt.broker_max_inflight");
    if (mqtt.broker_max_inflight < 1 || mqtt.broker_max_inflight > 65535) {
      throw FieldError{"mqtt.broker_max_inflight",
                       "must be between 1 and 65535 (the broker's max_inflight_messages)"};
    }
  }
  if (node["source"])
    mqtt.source = ToMqttSource(GetString(node["source"], "mqtt.source"), "mqtt.source");
  if (node["plugin_topic"])
    mqtt.plugin_topic = GetNonEmpty(node["plugin_topic"], "mqtt.plugin_topic");
  if (node["per_client_series"])
    mqtt.per_client_series = GetBool(node["per_client_series"], "mqtt.per_client_series");
  if (node["max_client_series"]) {
    mqtt.max_client_series = GetUnsigned(node["max_client_series"], "mqtt.max_client_series");
    if (mqtt.max_client_series < 1 || mqtt.max_client_series > 100000) {
      throw FieldError{"mqtt.max_client_series", "must be between 1 and 100000"};
    }
  }
  if (node["url"]) mqtt.url = GetNonEmpty(node["url"], "mqtt.url");
  if (node["username"]) mqtt.username = GetString(node["username"], "mqtt.username");
  if (node["password"]) mqtt.password = GetString(node["password"], "mqtt.password");
  if (node["ca_file"]) mqtt.ca_file = GetString(node["ca_file"], "mqtt.ca_file");
  if (node["client_id"]) mqtt.client_id = GetString(node["client_id"], "mqtt.client_id");
  if (node["topics"]) mqtt.topics = GetStringList(node["topics"], "mqtt.topics");
  if (node["shared_group"])
    mqtt.shared_group = GetString(node["shared_group"], "mqtt.shared_group");
  if (node["qos"]) {
    const auto qos = GetUnsigned(node["qos"], "mqtt.qos");
    if (qos > 2) throw FieldError{"mqtt.qos", "must be 0, 1 or 2"};
    mqtt.qos = static_cast<int>(qos);
  }
  if (node["topic_group_levels"]) {
    mqtt.topic_group_levels = GetUnsigned(node["topic_group_levels"], "mqtt.topic_group_levels");
    if (mqtt.topic_group_levels < 1 || mqtt.topic_group_levels > 32) {
      throw FieldError{"mqtt.topic_group_levels", "must be between 1 and 32"};
    }
  }
  if (node["topic_group_patterns"]) {
    mqtt.topic_group_patterns =
        GetStringList(node["topic_group_patterns"], "mqtt.topic_group_patterns");
  }
  if (node["max_topic_groups"]) {
    mqtt.max_topic_groups = GetUnsigned(node["max_topic_groups"], "mqtt.max_topic_groups");
    if (mqtt.max_topic_groups < 1 || mqtt.max_topic_groups > 100000) {
      throw FieldError{"mqtt.max_topic_groups", "must be between 1 and 100000"};
    }
  }
  if (node["reconnect_backoff_max"]) {
    mqtt.reconnect_backoff_max =
        GetDuration(node["reconnect_backoff_max"], "mqtt.reconnect_backoff_max");
  }
}

// Checks that need the file and the environment merged.
// Where a value came from, for messages: the variable if the environment set it, else the key.
std::string FieldName(const EnvLookup& env, const std::string& variable, const std::string& key) {
  return env(variable) ? variable : key;
}

void ValidateMqtt(MqttConfig& mqtt, const EnvLookup& env, const std::string& customer_id) {
  const std::string url_field = FieldName(env, "MQTT_URL", "mqtt.url");
  if (auto valid = ValidateMqttUrl(mqtt.url); !valid.ok())
    throw FieldError{url_field, valid.error()};
  if (mqtt.topics.empty())
    throw FieldError{"mqtt.topics", "needs at least one topic filter, e.g. [\"#\"]"};
  for (std::size_t i = 0; i < mqtt.topics.size(); ++i) {
    if (auto valid = ValidateTopicFilter(mqtt.topics[i]); !valid.ok()) {
      throw FieldError{"mqtt.topics[" + std::to_string(i) + "]", valid.error()};
    }
    if (mqtt.topics[i].rfind("$share/", 0) == 0) {
      throw FieldError{"mqtt.topics[" + std::to_string(i) + "]",
                       "write the filter without $share/; set mqtt.shared_group instead"};
    }
  }
  for (std::size_t i = 0; i < mqtt.topic_group_patterns.size(); ++i) {
    if (auto valid = ValidateTopicFilter(mqtt.topic_group_patterns[i]); !valid.ok()) {
      throw FieldError{"mqtt.topic_group_patterns[" + std::to_string(i) + "]", valid.error()};
    }
  }
  if (mqtt.topic_group_patterns.size() > mqtt.max_topic_groups) {
    throw FieldError{"mqtt.topic_group_patterns",
                     "has more patterns than mqtt.max_topic_groups allows"};
  }
  if (!mqtt.shared_group.empty() && mqtt.shared_group.find_first_of("/+#") != std::string::npos) {
    throw FieldError{"mqtt.shared_group", "must not contain '/', '+' or '#'"};
  }
  if (mqtt.username.empty() && !mqtt.password.empty()) {
    throw FieldError{FieldName(env, "MQTT_PASSWORD", "mqtt.password"),
                     "a password is set without a user name; set MQTT_USERNAME (or mqtt.username)"};
  }
  if (!mqtt.ca_file.empty() && access(mqtt.ca_file.c_str(), R_OK) != 0) {
    throw FieldError{FieldName(env, "MQTT_CA_FILE", "mqtt.ca_file"),
                     "cannot read '" + mqtt.ca_file + "'; check the path and its permissions"};
  }
  RequireAtLeast(mqtt.reconnect_backoff_max, std::chrono::milliseconds(100),
                 "mqtt.reconnect_backoff_max");
  if (!ValidateTopicFilter(mqtt.plugin_topic).ok() ||
      mqtt.plugin_topic.find_first_of("+#") != std::string::npos) {
    throw FieldError{
        "mqtt.plugin_topic",
        "must be the topic the plugin publishes to (its plugin_opt_billing_snapshot_topic), "
        "without wildcards"};
  }
  mqtt.client_id_is_stable = !mqtt.client_id.empty() || !customer_id.empty();
  if (mqtt.client_id.empty()) {
    // billing-exporter-<customer_id> is stable across restarts of the one replica, so the broker
    // can keep its session. Replicas of a shared group need distinct ids: add the host name.
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    mqtt.client_id = "billing-exporter-" + (customer_id.empty() ? std::string(host) : customer_id);
    if (!mqtt.shared_group.empty() && !customer_id.empty())
      mqtt.client_id += std::string("-") + host;
  }
}

// A key that only the other mqtt.source reads would be silently ignored: an operator who set
// mqtt.topics in plugin mode expects it to bill those topics. Refused instead.
void RefuseKeysOfTheOtherSource(const YAML::Node& mqtt, MqttSource source) {
  if (!mqtt || !mqtt.IsMap()) return;
  static const std::array<const char*, 6> kSubscriptionOnly = {
      "topics",          "shared_group", "qos", "topic_group_levels", "topic_group_patterns",
      "max_topic_groups"};
  static const std::array<const char*, 3> kPluginOnly = {"plugin_topic", "per_client_series",
                                                         "max_client_series"};
  if (source == MqttSource::kPlugin) {
    for (const char* key : kSubscriptionOnly) {
      if (mqtt[key]) {
        throw FieldError{"mqtt." + std::string(key),
                         "applies to mqtt.source: subscription only; with the plugin, the broker "
                         "groups topics itself (its plugin_opt_billing_* options): remove it"};
      }
    }
  } else {
    for (const char* key : kPluginOnly) {
      if (mqtt[key]) {
        throw FieldError{
            "mqtt." + std::string(key),
            "applies to mqtt.source: plugin only; set mqtt.source: plugin or remove it"};
      }
    }
  }
}

// The steps of Parse, in order; each throws FieldError naming the field at fault.
YAML::Node LoadYaml(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw FieldError{"config", "invalid YAML at line " + std::to_string(e.mark.line + 1) +
                                   ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg};
  }
  return root;
}

void ParseConstantLabels(const YAML::Node& root, ExporterConfig& config) {
  if (const auto labels = root["constant_labels"]) {
    RequireMap(labels, "constant_labels");
    for (const auto& entry : labels) {
      const auto name = GetString(entry.first, "constant_labels");
      const auto field = "constant_labels." + name;
      if (!std::regex_match(name, LabelNamePattern()) || name.rfind("__", 0) == 0) {
        throw FieldError{field,
                         "is not a valid Prometheus label name "
                         "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"};
      }
      const auto& reserved = ReservedLabels();
      if (std::find(reserved.begin(), reserved.end(), name) != reserved.end()) {
        throw FieldError{field,
                         "is a label the exporter sets itself; choose another name "
                         "(customer_id comes from customer_id or CUSTOMER_ID)"};
      }
      config.constant_labels.emplace_back(name, GetString(entry.second, field));
    }
  }
}

void ParseWeb(const YAML::Node& root, ExporterConfig& config) {
  if (const auto web = root["web"]) {
    CheckKeys(web, "web", {"basic_auth", "config_file"});
    if (web["config_file"])
      config.web_config_file = GetString(web["config_file"], "web.config_file");
    if (const auto auth = web["basic_auth"]) {
      CheckKeys(auth, "web.basic_auth", {"username", "password"});
      if (auth["username"])
        config.basic_auth_username = GetString(auth["username"], "web.basic_auth.username");
      if (auth["password"])
        config.basic_auth_password = GetString(auth["password"], "web.basic_auth.password");
    }
  }
}

// The file's keys; `customer_id` and `url_text` are validated later, after the environment.
void ParseFile(const YAML::Node& root, ExporterConfig& config, std::string& customer_id,
               std::string& url_text) {
  if (!root || root.IsNull()) return;
  CheckKeys(
      root, "",
      {"customer_id", "listen", "sample_interval", "constant_labels", "web", "postgres", "mqtt"});
  if (root["customer_id"]) customer_id = GetString(root["customer_id"], "customer_id");
  if (root["listen"]) config.listen = GetString(root["listen"], "listen");
  if (root["sample_interval"])
    config.sample_interval = GetDuration(root["sample_interval"], "sample_interval");
  ParseConstantLabels(root, config);
  ParseWeb(root, config);
  if (const auto pg = root["postgres"]) ParsePostgres(pg, config.postgres, url_text);
  if (const auto mqtt = root["mqtt"]) ParseMqtt(mqtt, config.mqtt);
}

void ApplyEnvironment(const EnvLookup& env, ExporterConfig& config, std::string& customer_id,
                      std::string& url_text) {
  // The environment overrides the file: a Kubernetes Secret supplies these.
  if (auto v = env("CUSTOMER_ID")) customer_id = *v;
  if (auto v = env("SAMPLE_INTERVAL")) config.sample_interval = ToDuration(*v, "SAMPLE_INTERVAL");
  // Set but empty is a mistake (a Secret key with no value), not a way to turn a collector off:
  // billing from it would silently stop.
  for (const char* variable : {"DATABASE_URL", "MQTT_URL"}) {
    if (auto v = env(variable); v && v->empty()) {
      throw FieldError{variable,
                       "is set but empty; give it a value, or unset it to turn that collector off"};
    }
  }
  if (auto v = env("DATABASE_URL")) url_text = *v;
  if (auto v = env("MQTT_URL")) config.mqtt.url = *v;
  if (auto v = env("MQTT_USERNAME")) config.mqtt.username = *v;
  if (auto v = env("MQTT_PASSWORD")) config.mqtt.password = *v;
  if (auto v = env("MQTT_CA_FILE")) config.mqtt.ca_file = *v;
  if (auto v = env("MQTT_CLIENT_ID")) config.mqtt.client_id = *v;
  if (auto v = env("MQTT_SOURCE")) config.mqtt.source = ToMqttSource(*v, "MQTT_SOURCE");
  if (auto v = env("EXPORTER_BASIC_AUTH_USERNAME")) config.basic_auth_username = *v;
  if (auto v = env("EXPORTER_BASIC_AUTH_PASSWORD")) config.basic_auth_password = *v;
  if (auto v = env("WEB_CONFIG_FILE")) config.web_config_file = *v;
}

// Checks across fields, once the file and the environment are merged.
void ValidateMerged(const YAML::Node& root, const EnvLookup& env, ExporterConfig& config,
                    const std::string& customer_id, const std::string& url_text) {
  RequireAtLeast(config.sample_interval, std::chrono::milliseconds(100), "sample_interval");
  const bool size_max_age_set =
      root && !root.IsNull() && root["postgres"] && root["postgres"]["size_max_age"];
  if (!size_max_age_set) {
    // The default must never make a valid sample_interval fail: with a slower schedule, every
    // sample re-measures the tables that are due.
    config.postgres.size_max_age = std::max(config.postgres.size_max_age, config.sample_interval);
  } else if (config.postgres.size_max_age.count() != 0 &&
             config.postgres.size_max_age < config.sample_interval) {
    throw FieldError{"postgres.size_max_age",
                     "must be 0 (measure every table every sample) or at least sample_interval (" +
                         FormatDuration(config.sample_interval) + ")"};
  }
  if (!customer_id.empty()) {
    ValidateCustomerId(customer_id, env("CUSTOMER_ID") ? "CUSTOMER_ID" : "customer_id");
    config.constant_labels.insert(config.constant_labels.begin(), {"customer_id", customer_id});
  }
  if (auto valid = ValidateListenAddress(config.listen); !valid.ok())
    throw FieldError{"listen", valid.error()};
  if (config.basic_auth_username.empty() != config.basic_auth_password.empty()) {
    throw FieldError{"web.basic_auth",
                     "set both username and password (or EXPORTER_BASIC_AUTH_USERNAME and "
                     "EXPORTER_BASIC_AUTH_PASSWORD), or neither"};
  }
  if (!url_text.empty()) {
    auto parsed = DatabaseUrl::Parse(url_text);
    if (!parsed.ok())
      throw FieldError{FieldName(env, "DATABASE_URL", "postgres.url"), parsed.error()};
    config.postgres.url = std::move(parsed).value();
  }
  if (!config.mqtt.url.empty()) {
    ValidateMqtt(config.mqtt, env, customer_id);
    RefuseKeysOfTheOtherSource(root["mqtt"], config.mqtt.source);
  }
  if (!config.postgres.url && config.mqtt.url.empty()) {
    throw FieldError{"DATABASE_URL",
                     "nothing to collect: set DATABASE_URL (or postgres.url) and/or MQTT_URL "
                     "(or mqtt.url)"};
  }
}

ExporterConfig Parse(const std::string& yaml_text, const EnvLookup& env) {
  ExporterConfig config;
  const YAML::Node root = LoadYaml(yaml_text);
  std::string customer_id;
  std::string url_text;
  ParseFile(root, config, customer_id, url_text);
  ApplyEnvironment(env, config, customer_id, url_text);
  ValidateMerged(root, env, config, customer_id, url_text);
  return config;
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

Result<ExporterConfig> ParseConfig(const std::string& yaml_text, const EnvLookup& env) {
  try {
    return Parse(yaml_text, env);
  } catch (const FieldError& e) {
    return Error{.message = e.message, .field = e.field};
  } catch (const YAML::Exception& e) {
    return Error{.message = e.what(), .field = "config"};
  }
}

Result<ExporterConfig> LoadConfig(const std::optional<std::string>& path, const EnvLookup& env) {
  std::string text;
  if (path) {
    std::ifstream in(*path);
    if (!in)
      return Error{.message = "cannot read '" + *path + "'; check the path and its permissions",
                   .field = "--config"};
    std::ostringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
  }
  auto result = ParseConfig(text, env);
  if (!result.ok() && path) {
    Error error = result.failure();
    error.message += " (in " + *path + ")";
    return error;
  }
  return result;
}

Status ValidateListenAddress(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Error{"'" + listen + "' is not HOST:PORT; write e.g. 0.0.0.0:9090"};
  }
  const auto host = listen.substr(0, colon);
  static const std::regex host_pattern("[A-Za-z0-9.-]+");
  if (!std::regex_match(host, host_pattern)) {
    return Error{"'" + host + "' is not an IPv4 address or host name; write e.g. 0.0.0.0:9090"};
  }
  const auto port_text = listen.substr(colon + 1);
  unsigned port = 0;
  const auto [ptr, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() ||
      port > 65535) {
    return Error{"'" + port_text + "' is not a port number (0-65535)"};
  }
  return Ok();
}

}  // namespace billing::exporter
