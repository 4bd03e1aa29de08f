// The exporter's configuration: a YAML file, overridden by environment
// variables, validated into one value before anything starts. Every error names
// the field (its YAML path or variable).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "billing/common/result.h"
#include "database_url.h"

namespace billing::exporter {

struct QualifiedTable {
  std::string schema;
  std::string table;
};

struct PostgresConfig {
  std::optional<DatabaseUrl> url;  // unset: the PostgreSQL collector is off
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds statement_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds reconnect_backoff_max{std::chrono::seconds(30)};
  // Glob patterns (fnmatch): schemas match the schema name, tables match
  // "schema.table". Empty include lists include everything.
  std::vector<std::string> include_schemas;
  std::vector<std::string> exclude_schemas;
  std::vector<std::string> include_tables;
  std::vector<std::string> exclude_tables;
  std::size_t max_table_series = 500;
  // Every table's sizes are measured exactly at least this often; in between, only tables whose
  // writes, VACUUM or DDL could have changed their size are. 0: every table every sample.
  // Otherwise at least sample_interval.
  std::chrono::milliseconds size_max_age{std::chrono::minutes(5)};
  std::vector<QualifiedTable> exact_count_tables;
  std::chrono::milliseconds exact_count_interval{std::chrono::minutes(5)};
  std::chrono::milliseconds exact_count_timeout{std::chrono::seconds(10)};
};

enum class MqttSource {
  kSubscription,  // count by subscribing to the topics: the broker delivers every message again
  kPlugin,        // read the broker plugin's usage snapshots (exporter/plugin)
};

struct MqttConfig {
  std::string url;  // empty: the MQTT collector is off. tcp://host:1883, ssl://host:8883
  std::string username;
  std::string password;
  std::string ca_file;               // PEM bundle to verify an ssl:// broker; empty: the system's
  std::string client_id;             // defaulted by ParseConfig when empty
  bool client_id_is_stable = false;  // set or derived from customer_id: the same after a restart
  std::vector<std::string> topics{"#"};  // filters counted per topic group
  std::string
      shared_group;  // set: subscribe as $share/<group>/<filter> (replicas never double count)
  int qos = 1;
  std::size_t topic_group_levels = 1;             // a group is the first N levels of the topic...
  std::vector<std::string> topic_group_patterns;  // ...unless it matches one of these filters
  std::size_t max_topic_groups = 100;             // beyond: the "other" group
  std::chrono::milliseconds reconnect_backoff_max{std::chrono::seconds(30)};
  // The broker's in-flight window for QoS 1 and 2 deliveries to one client (Mosquitto:
  // max_inflight_messages, default 20): acknowledgements are batched until this many are owed.
  std::size_t broker_max_inflight = 20;
  MqttSource source = MqttSource::kSubscription;
  std::string plugin_topic = "$SYS/billing/v1/snapshot";  // the plugin's default
  bool per_client_series = false;        // plugin mode: iotistic_mqtt_client_* series per client_id
  std::size_t max_client_series = 1000;  // beyond: summed into client_id=""
};

struct ExporterConfig {
  std::string listen = "0.0.0.0:9090";
  std::chrono::milliseconds sample_interval{std::chrono::seconds(15)};
  // Labels on every series, customer_id first when set.
  std::vector<std::pair<std::string, std::string>> constant_labels;
  std::string basic_auth_username;  // both empty: no authentication on /metrics
  std::string basic_auth_password;
  // The web configuration file (exporter-toolkit's format: TLS, bcrypt users); read and validated
  // by main through ParseWebConfig. Empty: plain HTTP.
  std::string web_config_file;
  PostgresConfig postgres;
  MqttConfig mqtt;
};

using common::Error;
using common::Ok;
using common::Result;
using common::Status;
// Configuration errors name the YAML path ("postgres.statement_timeout") or the variable
// ("DATABASE_URL") in Error::field.

/// Looks an environment variable up; nullopt when unset. Injected so tests need
/// no setenv.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnvironment();

/// Parses `yaml_text` (may be empty: all defaults) and applies the environment
/// on top. `source` names the file in messages.
Result<ExporterConfig> ParseConfig(const std::string& yaml_text, const EnvLookup& env);

/// Reads `path` (nullopt: no file) and calls ParseConfig.
Result<ExporterConfig> LoadConfig(const std::optional<std::string>& path, const EnvLookup& env);

/// Validates "HOST:PORT" (IPv4 address or host name, port 0-65535).
Status ValidateListenAddress(const std::string& listen);

}  // namespace billing::exporter
