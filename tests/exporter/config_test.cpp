#include "config.h"

#include <gtest/gtest.h>

#include <map>

namespace billing::exporter {
namespace {

using std::chrono::milliseconds;

EnvLookup Env(std::map<std::string, std::string> vars = {}) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const std::map<std::string, std::string> kDb = {{"DATABASE_URL", "postgresql://u:pw@h:5432/d"}};

ExporterConfig MustParse(const std::string& yaml, const EnvLookup& env) {
  auto result = ParseConfig(yaml, env);
  if (!result.ok()) {
    ADD_FAILURE() << result.error();
    return {};
  }
  return std::move(result).value();
}

Error MustFail(const std::string& yaml, const EnvLookup& env) {
  auto result = ParseConfig(yaml, env);
  EXPECT_FALSE(result.ok()) << yaml;
  if (!result.ok()) return result.failure();
  return {};
}

// The provisioner's limit (billing/common/customer_id.h): 34 characters, so that every object
// named after the id fits; an id the provisioner could never have made is refused at start.
TEST(ConfigTest, CustomerIdFollowsTheProvisionersRule) {
  auto env = kDb;
  env["CUSTOMER_ID"] = std::string(34, 'a');
  const auto labels = MustParse("", Env(env)).constant_labels;
  ASSERT_FALSE(labels.empty());
  EXPECT_EQ(labels.front(),
            (std::pair<std::string, std::string>{"customer_id", env["CUSTOMER_ID"]}));
  env["CUSTOMER_ID"] = std::string(35, 'a');
  const auto error = MustFail("", Env(env));
  EXPECT_EQ(error.field, "CUSTOMER_ID");
  EXPECT_NE(error.message.find("1-34 lowercase letters"), std::string::npos) << error.message;
}

TEST(ConfigTest, DefaultsWithOnlyDatabaseUrl) {
  const auto config = MustParse("", Env(kDb));
  EXPECT_EQ(config.listen, "0.0.0.0:9090");
  EXPECT_EQ(config.sample_interval, milliseconds(15000));
  EXPECT_TRUE(config.constant_labels.empty());
  ASSERT_TRUE(config.postgres.url.has_value());
  EXPECT_EQ(config.postgres.url->password(), "pw");
  EXPECT_EQ(config.postgres.max_table_series, 500u);
  EXPECT_EQ(config.postgres.size_max_age, milliseconds(300000));
}

TEST(ConfigTest, SizeMaxAge) {
  EXPECT_EQ(MustParse("postgres: {size_max_age: 0s}", Env(kDb)).postgres.size_max_age,
            milliseconds(0));
  EXPECT_EQ(MustParse("sample_interval: 30s\npostgres: {size_max_age: 30s}", Env(kDb))
                .postgres.size_max_age,
            milliseconds(30000));
  EXPECT_EQ(MustFail("postgres: {size_max_age: 10s}", Env(kDb)).field, "postgres.size_max_age");
  EXPECT_EQ(MustFail("postgres: {size_max_age: often}", Env(kDb)).field, "postgres.size_max_age");
  // SAMPLE_INTERVAL from the environment counts too.
  auto env = kDb;
  env["SAMPLE_INTERVAL"] = "10m";
  EXPECT_EQ(MustFail("postgres: {size_max_age: 5m}", Env(env)).field, "postgres.size_max_age");
  // The default follows a slow sample_interval instead of failing it.
  EXPECT_EQ(MustParse("", Env(env)).postgres.size_max_age, milliseconds(600000));
}

TEST(ConfigTest, FullFileIsRead) {
  const auto config = MustParse(R"(
customer_id: abc123
listen: 127.0.0.1:9191
sample_interval: 30s
constant_labels: {region: eu-west}
web:
  basic_auth: {username: prom, password: scrape}
postgres:
  url: postgresql://u:pw@db:5432/sensors
  statement_timeout: 2s
  include_schemas: [public, "tenant_*"]
  exclude_tables: ["public.tmp_*"]
  max_table_series: 50
  exact_count:
    tables: [devices, "audit.events", {schema: "odd.schema", table: "a.b"}]
    interval: 10m
    timeout: 20s
)",
                                Env());
  EXPECT_EQ(config.listen, "127.0.0.1:9191");
  EXPECT_EQ(config.sample_interval, milliseconds(30000));
  ASSERT_EQ(config.constant_labels.size(), 2u);
  EXPECT_EQ(config.constant_labels[0],
            (std::pair<std::string, std::string>{"customer_id", "abc123"}));
  EXPECT_EQ(config.constant_labels[1], (std::pair<std::string, std::string>{"region", "eu-west"}));
  EXPECT_EQ(config.basic_auth_username, "prom");
  EXPECT_EQ(config.postgres.statement_timeout, milliseconds(2000));
  EXPECT_EQ(config.postgres.include_schemas, (std::vector<std::string>{"public", "tenant_*"}));
  EXPECT_EQ(config.postgres.max_table_series, 50u);
  ASSERT_EQ(config.postgres.exact_count_tables.size(), 3u);
  EXPECT_EQ(config.postgres.exact_count_tables[0].schema, "public");
  EXPECT_EQ(config.postgres.exact_count_tables[0].table, "devices");
  EXPECT_EQ(config.postgres.exact_count_tables[1].schema, "audit");
  EXPECT_EQ(config.postgres.exact_count_tables[2].schema, "odd.schema");
  EXPECT_EQ(config.postgres.exact_count_tables[2].table, "a.b");
  EXPECT_EQ(config.postgres.exact_count_interval, milliseconds(600000));
}

TEST(ConfigTest, EnvironmentOverridesTheFile) {
  const auto config = MustParse(
      "customer_id: fromfile\nsample_interval: 30s\npostgres: {url: "
      "'postgresql://a@b/c'}\n",
      Env({{"CUSTOMER_ID", "fromenv"},
           {"SAMPLE_INTERVAL", "1s"},
           {"DATABASE_URL", "postgresql://x:y@z:1/w"}}));
  EXPECT_EQ(config.constant_labels.at(0).second, "fromenv");
  EXPECT_EQ(config.sample_interval, milliseconds(1000));
  EXPECT_EQ(config.postgres.url->Redacted(), "x@z:1/w");
}

TEST(ConfigTest, ErrorsNameTheField) {
  struct Case {
    std::string yaml;
    std::map<std::string, std::string> env;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"listen: [1, 2", kDb, "config"},                    // invalid YAML
      {"sample_intervall: 15s", kDb, "sample_intervall"},  // unknown key (typo)
      {"postgres: {urll: x}", kDb, "postgres.urll"},       // unknown nested key
      {"\"\": x", kDb, "\"\""},                            // empty key (found by fuzzing)
      {"postgres: {\"\": x}", kDb, "postgres.\"\""},
      {"sample_interval: 15", kDb, "sample_interval"},     // bare number
      {"sample_interval: fast", kDb, "sample_interval"},   // bad duration
      {"sample_interval: [15s]", kDb, "sample_interval"},  // wrong type
      {"postgres: {max_table_series: many}", kDb, "postgres.max_table_series"},
      {"postgres: {max_table_series: 0}", kDb, "postgres.max_table_series"},
      {"postgres: {include_tables: public}", kDb, "postgres.include_tables"},
      {"postgres: {exact_count: {tables: [{schema: s}]}}", kDb,
       "postgres.exact_count.tables[0].table"},
      {"postgres: {exact_count: {timeout: 1x}}", kDb, "postgres.exact_count.timeout"},
      {"constant_labels: {\"bad-name\": x}", kDb, "constant_labels.bad-name"},
      {"constant_labels: {schema: x}", kDb, "constant_labels.schema"},
      {"listen: nowhere", kDb, "listen"},
      {"listen: 0.0.0.0:99999", kDb, "listen"},
      {"web: {basic_auth: {username: u}}", kDb, "web.basic_auth"},
      {"", {{"DATABASE_URL", "postgresql://u:pw@h:notaport/d"}}, "DATABASE_URL"},
      {"postgres: {url: 'postgresql://u@h:bad/d'}", {}, "postgres.url"},
      {"",
       {{"DATABASE_URL", "postgresql://u@h/d"}, {"SAMPLE_INTERVAL", "1 second"}},
       "SAMPLE_INTERVAL"},
      {"", {{"DATABASE_URL", "postgresql://u@h/d"}, {"CUSTOMER_ID", "ABC_123"}}, "CUSTOMER_ID"},
      {"customer_id: \"\"\nsample_interval: 10ms", kDb, "sample_interval"},
      {"", {}, "DATABASE_URL"},  // nothing to collect
      {"- a\n- b", kDb, "config"},
      {"", {{"MQTT_URL", "127.0.0.1:1883"}}, "MQTT_URL"},
      {"mqtt: {url: 'tcp://u:pw@h:1883'}", {}, "mqtt.url"},
      {"mqtt: {url: 'tcp://h:1883', qos: 3}", {}, "mqtt.qos"},
      {"mqtt: {url: 'tcp://h:1883', topics: ['devices/#/x']}", {}, "mqtt.topics[0]"},
      {"mqtt: {url: 'tcp://h:1883', topics: ['$share/g/#']}", {}, "mqtt.topics[0]"},
      {"mqtt: {url: 'tcp://h:1883', topics: []}", {}, "mqtt.topics"},
      {"mqtt: {url: 'tcp://h:1883', topic_group_patterns: ['a+']}",
       {},
       "mqtt.topic_group_patterns[0]"},
      {"mqtt: {url: 'tcp://h:1883', topic_group_levels: 0}", {}, "mqtt.topic_group_levels"},
      {"mqtt: {url: 'tcp://h:1883', max_topic_groups: 1, topic_group_patterns: [a, b]}",
       {},
       "mqtt.topic_group_patterns"},
      {"mqtt: {url: 'tcp://h:1883', shared_group: 'a/b'}", {}, "mqtt.shared_group"},
      {"mqtt: {url: 'tcp://h:1883', ca_file: /nonexistent/ca.pem}", {}, "mqtt.ca_file"},
      {"mqtt: {url: 'tcp://h:1883', topic: '#'}", {}, "mqtt.topic"},
      {"", {{"DATABASE_URL", ""}, {"MQTT_URL", "tcp://h:1883"}}, "DATABASE_URL"},  // set but empty
      {"", {{"MQTT_URL", ""}, {"DATABASE_URL", "postgresql://u@h/d"}}, "MQTT_URL"},
      {"postgres: {url: ''}\nmqtt: {url: 'tcp://h:1883'}", {}, "postgres.url"},
      {"", {{"MQTT_URL", "tcp://h:1883"}, {"MQTT_PASSWORD", "pw"}}, "MQTT_PASSWORD"},
      {"mqtt: {url: 'tcp://h:1883', password: pw}", {}, "mqtt.password"},
      {"", {{"MQTT_URL", "tcp://h:1883"}, {"MQTT_CA_FILE", "/nonexistent.pem"}}, "MQTT_CA_FILE"},
  };
  for (const auto& c : cases) {
    const auto error = MustFail(c.yaml, Env(c.env));
    EXPECT_EQ(error.field, c.field) << c.yaml << " -> " << error.ToString();
    EXPECT_FALSE(error.message.empty());
    EXPECT_EQ(error.ToString().find('\n'), std::string::npos) << error.ToString();
  }
}

TEST(ConfigTest, MqttOnlyWithEnvironment) {
  const auto config =
      MustParse("mqtt: {topic_group_patterns: ['devices/+/telemetry'], shared_group: billing}\n",
                Env({{"MQTT_URL", "ssl://broker:8883"},
                     {"MQTT_USERNAME", "exporter"},
                     {"MQTT_PASSWORD", "pw"},
                     {"CUSTOMER_ID", "abc123"}}));
  EXPECT_FALSE(config.postgres.url.has_value());
  EXPECT_EQ(config.mqtt.url, "ssl://broker:8883");
  EXPECT_EQ(config.mqtt.username, "exporter");
  EXPECT_EQ(config.mqtt.topics, (std::vector<std::string>{"#"}));
  EXPECT_EQ(config.mqtt.qos, 1);
  // Replicas sharing a subscription need distinct client ids; the customer id keeps them stable.
  EXPECT_EQ(config.mqtt.client_id.rfind("billing-exporter-abc123-", 0), 0u)
      << config.mqtt.client_id;
  const auto single = MustParse("", Env({{"MQTT_URL", "tcp://b:1883"}, {"CUSTOMER_ID", "abc123"}}));
  EXPECT_EQ(single.mqtt.client_id, "billing-exporter-abc123");
}

TEST(ConfigTest, ErrorsNeverContainThePassword) {
  const auto error = MustFail("", Env({{"DATABASE_URL", "postgresql://u:hunter2@h:bad/d"}}));
  EXPECT_EQ(error.ToString().find("hunter2"), std::string::npos) << error.ToString();
}

TEST(ConfigTest, ListenAddressValidation) {
  EXPECT_TRUE(ValidateListenAddress("0.0.0.0:9090").ok());
  EXPECT_TRUE(ValidateListenAddress("localhost:0").ok());
  EXPECT_FALSE(ValidateListenAddress(":9090").ok());
  EXPECT_FALSE(ValidateListenAddress("host:").ok());
  EXPECT_FALSE(ValidateListenAddress("host:-1").ok());
}

}  // namespace
}  // namespace billing::exporter

namespace billing::exporter {
namespace {

TEST(ConfigTest, MqttPluginMode) {
  const std::map<std::string, std::string> mqtt = {{"MQTT_URL", "tcp://broker:1883"}};
  auto config = MustParse("", Env(mqtt));
  EXPECT_EQ(config.mqtt.source, MqttSource::kSubscription);
  EXPECT_FALSE(config.mqtt.per_client_series);
  EXPECT_EQ(config.mqtt.broker_max_inflight, 20u);
  config = MustParse(
      "mqtt: {source: plugin, per_client_series: true, max_client_series: 5, "
      "plugin_topic: billing/usage, broker_max_inflight: 100}\n",
      Env(mqtt));
  EXPECT_EQ(config.mqtt.source, MqttSource::kPlugin);
  EXPECT_TRUE(config.mqtt.per_client_series);
  EXPECT_EQ(config.mqtt.max_client_series, 5u);
  EXPECT_EQ(config.mqtt.plugin_topic, "billing/usage");
  EXPECT_EQ(config.mqtt.broker_max_inflight, 100u);
  auto env = mqtt;
  env["MQTT_SOURCE"] = "plugin";
  EXPECT_EQ(MustParse("", Env(env)).mqtt.source, MqttSource::kPlugin);

  EXPECT_EQ(MustFail("mqtt: {source: sub}\n", Env(mqtt)).field, "mqtt.source");
  env["MQTT_SOURCE"] = "Plugin";
  EXPECT_EQ(MustFail("", Env(env)).field, "MQTT_SOURCE");
  EXPECT_EQ(MustFail("mqtt: {per_client_series: yes please}\n", Env(mqtt)).field,
            "mqtt.per_client_series");
  EXPECT_EQ(MustFail("mqtt: {plugin_topic: a/#}\n", Env(mqtt)).field, "mqtt.plugin_topic");
  EXPECT_EQ(MustFail("mqtt: {broker_max_inflight: 0}\n", Env(mqtt)).field,
            "mqtt.broker_max_inflight");
}

TEST(ConfigTest, KeysOfTheOtherMqttSourceAreRefusedNotIgnored) {
  const std::map<std::string, std::string> mqtt = {{"MQTT_URL", "tcp://broker:1883"}};
  // Plugin mode: the broker's plugin groups topics; a subscription key would bill nothing.
  for (const char* key : {"topics: [\"#\"]", "qos: 1", "shared_group: g", "topic_group_levels: 2",
                          "topic_group_patterns: [\"a/+\"]", "max_topic_groups: 5"}) {
    const auto error = MustFail("mqtt: {source: plugin, " + std::string(key) + "}\n", Env(mqtt));
    EXPECT_EQ(error.field, "mqtt." + std::string(key).substr(0, std::string(key).find(':')));
    EXPECT_NE(error.message.find("subscription only"), std::string::npos) << error.message;
  }
  for (const char* key :
       {"per_client_series: true", "max_client_series: 5", "plugin_topic: billing/usage"}) {
    const auto error = MustFail("mqtt: {" + std::string(key) + "}\n", Env(mqtt));
    EXPECT_EQ(error.field, "mqtt." + std::string(key).substr(0, std::string(key).find(':')));
    EXPECT_NE(error.message.find("plugin only"), std::string::npos) << error.message;
  }
  // MQTT_SOURCE=plugin over a file written for subscription mode is refused the same way.
  auto env = mqtt;
  env["MQTT_SOURCE"] = "plugin";
  EXPECT_EQ(MustFail("mqtt: {qos: 1}\n", Env(env)).field, "mqtt.qos");
}

}  // namespace
}  // namespace billing::exporter
