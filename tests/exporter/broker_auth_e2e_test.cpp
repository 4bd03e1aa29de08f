// The tenant broker as `provisioner render` configures it, run by Debian's Mosquitto 2.0.11 on
// 127.0.0.1: the mosquitto.conf of the rendered ConfigMap, the password file and ACL of the
// rendered Secret, the client-id guard and (in plugin mode, the chart's default) billing plugins
// it loads, and the billing exporter started with the rendered Deployment's environment and
// config.yaml. Only the listener lines (a free port on 127.0.0.1) and the file paths (a temporary
// directory, the plugins in the build tree) differ from what a pod gets. Both metering modes of
// the chart (mosquitto.metering.source) are run.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "billing/common/base64.h"
#include "testbed.h"

namespace {

using namespace billing::testbed;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kExporter = BILLING_EXPORTER_PATH;
constexpr const char* kProvisioner = PROVISIONER_PATH;
constexpr const char* kGuard = BILLING_GUARD_PATH;
constexpr const char* kBillingPlugin = BILLING_PLUGIN_PATH;
constexpr const char* kCustomer = "authtest";
constexpr const char* kReservedId = "billing-exporter-authtest";
// What the provisioner's signup generates for /metrics (rendered into the Secret).
constexpr const char* kMetricsPassword = "m3trics-Passw0rd-for-scrapes";

std::string Decode(const YAML::Node& node) {
  auto decoded = billing::common::Base64Decode(node.as<std::string>());
  if (!decoded) throw std::runtime_error("Secret value is not base64");
  return *decoded;
}

// The objects of one `provisioner render`, by kind/name.
struct Rendered {
  std::map<std::string, YAML::Node> objects;
  std::map<std::string, std::string> secret;  // decoded data of customer-{id}-secrets

  const YAML::Node& Get(const std::string& kind, const std::string& name) const {
    const auto found = objects.find(kind + "/" + name);
    if (found == objects.end()) throw std::runtime_error("not rendered: " + kind + "/" + name);
    return found->second;
  }

  // A container's environment with every secretKeyRef resolved against the rendered Secret.
  std::map<std::string, std::string> Env(const std::string& deployment) const {
    std::map<std::string, std::string> env;
    const auto container =
        Get("Deployment", deployment)["spec"]["template"]["spec"]["containers"][0];
    for (const auto& variable : container["env"]) {
      const auto name = variable["name"].as<std::string>();
      if (variable["value"]) {
        env[name] = variable["value"].as<std::string>();
      } else {
        env[name] = secret.at(variable["valueFrom"]["secretKeyRef"]["key"].as<std::string>());
      }
    }
    return env;
  }
};

// `metering`: mosquitto.metering.source.
Rendered Render(const std::string& metering) {
  const auto result = RunCommand(
      {kProvisioner, "render", "--set", std::string("customer.id=") + kCustomer, "--set",
       "license.key=test-license", "--set", "mosquitto.sysInterval=1", "--set",
       "mosquitto.metering.source=" + metering, "--set", "mosquitto.metering.snapshotInterval=1",
       "--set", std::string("exporter.basicAuth.password=") + kMetricsPassword},
      {}, 60s);
  if (result.exit_code != 0) throw std::runtime_error("provisioner render: " + result.output);
  Rendered rendered;
  for (const auto& document : YAML::LoadAll(result.output)) {
    if (!document.IsMap()) continue;
    rendered.objects[document["kind"].as<std::string>() + "/" +
                     document["metadata"]["name"].as<std::string>()] = document;
  }
  for (const auto& entry :
       rendered.Get("Secret", std::string("customer-") + kCustomer + "-secrets")["data"]) {
    rendered.secret[entry.first.as<std::string>()] = Decode(entry.second);
  }
  return rendered;
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

class BrokerAuthTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool PluginMode() const { return GetParam() == "plugin"; }

  void SetUp() override {
    rendered_ = Render(GetParam());
    // Mosquitto drops to its own user: the directory and files must be readable by it.
    auth_ = dir_.path() / "auth";
    fs::create_directories(auth_);
    fs::permissions(dir_.path(), fs::perms::all);
    fs::permissions(auth_, fs::perms::all);
    std::ofstream(auth_ / "passwords") << rendered_.secret.at("MOSQUITTO_PASSWORDS");
    std::ofstream(auth_ / "acl") << rendered_.secret.at("MOSQUITTO_ACL");
    for (const char* file : {"passwords", "acl"}) {
      fs::permissions(auth_ / file,
                      fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    }
    // The rendered configuration without its listeners (the harness opens one on 127.0.0.1),
    // appended after the harness's own lines, so that it overrides them (allow_anonymous).
    const std::string config =
        rendered_
            .Get("ConfigMap", std::string("customer-") + kCustomer +
                                  "-mosquitto-config")["data"]["mosquitto.conf"]
            .as<std::string>();
    ASSERT_NE(config.find("allow_anonymous false\n"), std::string::npos) << config;
    std::istringstream lines(config);
    std::string kept;
    for (std::string line; std::getline(lines, line);) {
      if (line.starts_with("listener ") || line.starts_with("protocol ")) continue;
      kept += line + "\n";
    }
    kept = Replace(kept, "/mosquitto/auth/", auth_.string() + "/");
    kept = Replace(kept, "/usr/lib/iotistic/billing_client_id_guard.so", kGuard);
    EXPECT_EQ(kept.find("billing_mosquitto_plugin.so") != std::string::npos, PluginMode()) << kept;
    kept = Replace(kept, "/usr/lib/iotistic/billing_mosquitto_plugin.so", kBillingPlugin);
    broker_ = std::make_unique<MosquittoServer>(1, kept);
    device_user_ = rendered_.secret.at("MQTT_DEVICE_USERNAME");
    device_password_ = rendered_.secret.at("MQTT_DEVICE_PASSWORD");
    exporter_user_ = rendered_.secret.at("MQTT_EXPORTER_USERNAME");
    exporter_password_ = rendered_.secret.at("MQTT_EXPORTER_PASSWORD");
  }

  // mosquitto_pub/mosquitto_sub against the broker with `args`.
  CommandResult Client(const std::string& tool, std::vector<std::string> args) {
    std::vector<std::string> argv = {tool, "-h", "127.0.0.1", "-p",
                                     std::to_string(broker_->port())};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, {}, 30s);
  }

  // The exporter as the rendered Deployment runs it: its environment (secrets resolved) and its
  // config.yaml; the broker's URL is the test broker's, and there is no database.
  std::unique_ptr<ExporterProcess> StartExporter() {
    auto env = rendered_.Env(std::string("customer-") + kCustomer + "-exporter");
    EXPECT_EQ(env.at("MQTT_CLIENT_ID"), kReservedId);
    env["MQTT_URL"] = broker_->Url();
    env.erase("DATABASE_URL");
    env["SAMPLE_INTERVAL"] = "300ms";
    const auto config = dir_.path() / "config.yaml";
    std::ofstream(config) << rendered_
                                 .Get("ConfigMap", std::string("customer-") + kCustomer +
                                                       "-exporter-config")["data"]["config.yaml"]
                                 .as<std::string>();
    auto exporter = std::make_unique<ExporterProcess>(
        kExporter, std::vector<std::string>{"--config", config.string()},
        std::vector<std::pair<std::string, std::string>>(env.begin(), env.end()));
    EXPECT_TRUE(exporter->WaitHealthy()) << exporter->process().Log();
    return exporter;
  }

  std::vector<MetricSample> Scrape(const ExporterProcess& exporter) {
    const auto response =
        HttpGet(exporter.BaseUrl() + "/metrics",
                {"Authorization: Basic " +
                 billing::common::Base64Encode(rendered_.secret.at("EXPORTER_BASIC_AUTH_USERNAME") +
                                               ":" + kMetricsPassword)});
    if (response.status != 200) return {};
    return ParseMetricsText(response.body);
  }

  TempDir dir_;
  fs::path auth_;
  Rendered rendered_;
  std::unique_ptr<MosquittoServer> broker_;
  std::string device_user_, device_password_, exporter_user_, exporter_password_;
};

TEST_P(BrokerAuthTest, AnonymousAndWrongPasswordsAreRefused) {
  const auto anonymous = Client("mosquitto_pub", {"-t", "devices/x", "-m", "junk"});
  EXPECT_NE(anonymous.exit_code, 0);
  EXPECT_NE(anonymous.output.find("not authorised"), std::string::npos) << anonymous.output;
  const auto wrong =
      Client("mosquitto_pub", {"-u", device_user_, "-P", "not-the-password", "-t", "x", "-m", "y"});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.output.find("not authorised"), std::string::npos) << wrong.output;
  // The rendered device credentials work.
  const auto device =
      Client("mosquitto_pub", {"-u", device_user_, "-P", device_password_, "-t", "x", "-m", "y"});
  EXPECT_EQ(device.exit_code, 0) << device.output;
}

TEST_P(BrokerAuthTest, ExporterCountsExactlyAndNobodyElseTakesItsClientId) {
  auto exporter = StartExporter();
  ASSERT_TRUE(WaitFor([&] { return FindValue(Scrape(*exporter), "iotistic_mqtt_up") == 1.0; }, 20s))
      << exporter->process().Log();

  // /metrics has basic auth with the rendered settings: no credentials, no page.
  EXPECT_EQ(HttpGet(exporter->BaseUrl() + "/metrics").status, 401);

  // Ground truth: 40 QoS 1 messages of known sizes from the device user.
  std::string lines;
  double bytes = 0;
  for (int i = 0; i < 40; ++i) {
    const std::string payload = "{\"reading\":" + std::to_string(i * 37) + "}";
    lines += payload + "\n";
    bytes += static_cast<double>(payload.size());
  }
  const auto input = dir_.path() / "messages.txt";
  std::ofstream(input) << lines;
  const auto published =
      RunCommand({"sh", "-c",
                  "mosquitto_pub -h 127.0.0.1 -p " + std::to_string(broker_->port()) + " -u '" +
                      device_user_ + "' -P '" + device_password_ +
                      "' -q 1 -t devices/dev-1/telemetry -l < '" + input.string() + "'"},
                 {}, 60s);
  ASSERT_EQ(published.exit_code, 0) << published.output;
  double messages = 40;
  if (PluginMode()) {
    // The plugin meters retained publishes too (Mosquitto's own $SYS total leaves them out).
    const auto retained = Client("mosquitto_pub", {"-u", device_user_, "-P", device_password_, "-r",
                                                   "-t", "devices/dev-1/state", "-m", "on"});
    ASSERT_EQ(retained.exit_code, 0) << retained.output;
    messages += 1;
    bytes += 2;
  }
  EXPECT_TRUE(WaitFor(
      [&] {
        const auto samples = Scrape(*exporter);
        return FindValue(samples, "iotistic_mqtt_broker_publish_messages_received_total") ==
                   messages &&
               Sum(samples, "iotistic_mqtt_messages_total") == messages;
      },
      20s))
      << exporter->process().Log();
  auto samples = Scrape(*exporter);
  EXPECT_EQ(FindValue(samples, "iotistic_mqtt_broker_bytes_received_total"), bytes);
  EXPECT_EQ(Sum(samples, "iotistic_mqtt_payload_bytes_total"), bytes);
  if (PluginMode()) {
    // Every message is under 5 KB: one unit each. The device clients were connected for a
    // moment; the exporter's own connection is unmetered, so it adds nothing.
    EXPECT_EQ(FindValue(samples, "iotistic_mqtt_message_units_total"), messages);
    const auto seconds = FindValue(samples, "iotistic_mqtt_connection_seconds_total");
    ASSERT_TRUE(seconds.has_value());
    EXPECT_LT(*seconds, 30.0);
  } else {
    EXPECT_FALSE(FindValue(samples, "iotistic_mqtt_message_units_total").has_value());
  }

  // The device user cannot take the exporter's session: refused at CONNECT, the exporter stays.
  const auto takeover = Client("mosquitto_sub", {"-u", device_user_, "-P", device_password_, "-i",
                                                 kReservedId, "-t", "devices/#", "-W", "2"});
  EXPECT_NE(takeover.exit_code, 0);
  EXPECT_NE(takeover.output.find("not authorised"), std::string::npos) << takeover.output;
  // Neither can an anonymous client, nor the exporter's user without its password.
  EXPECT_NE(Client("mosquitto_sub", {"-i", kReservedId, "-t", "#", "-W", "2"}).exit_code, 0);
  EXPECT_NE(Client("mosquitto_sub", {"-u", exporter_user_, "-P", "wrong-password", "-i",
                                     kReservedId, "-t", "#", "-W", "2"})
                .exit_code,
            0);

  // The exporter's user publishes nothing (PUBACK "not authorized" with MQTT 5) ...
  const auto exporter_publish =
      Client("mosquitto_pub", {"-V", "5", "-q", "1", "-u", exporter_user_, "-P", exporter_password_,
                               "-t", "devices/dev-1/telemetry", "-m", "junk"});
  EXPECT_NE(exporter_publish.output.find("Not authorized"), std::string::npos)
      << exporter_publish.output;

  // ... and the device user reads no $SYS: Mosquitto 2.0 grants the subscription and applies the
  // ACL to each delivery, so nothing arrives in three $SYS intervals, while the exporter's user
  // (with another client id) gets $SYS at once.
  const auto device_sys = Client("mosquitto_sub", {"-u", device_user_, "-P", device_password_, "-t",
                                                   "$SYS/#", "-W", "3", "-v"});
  EXPECT_EQ(device_sys.output.find("$SYS/"), std::string::npos) << device_sys.output;
  const auto exporter_sys =
      Client("mosquitto_sub", {"-u", exporter_user_, "-P", exporter_password_, "-i", "sys-reader",
                               "-t", "$SYS/broker/uptime", "-C", "1", "-W", "5", "-v"});
  EXPECT_NE(exporter_sys.output.find("$SYS/broker/uptime"), std::string::npos)
      << exporter_sys.output;
  if (PluginMode()) {
    // The plugin's snapshot (every client's usage) is retained: the exporter's user gets it at
    // once, the devices never; and in plugin mode the exporter's user reads no device topic.
    const auto device_usage = Client("mosquitto_sub", {"-u", device_user_, "-P", device_password_,
                                                       "-t", "$SYS/billing/#", "-W", "3", "-v"});
    EXPECT_EQ(device_usage.output.find("$SYS/billing/"), std::string::npos) << device_usage.output;
    const auto exporter_usage = Client(
        "mosquitto_sub", {"-u", exporter_user_, "-P", exporter_password_, "-i", "usage-reader",
                          "-t", "$SYS/billing/#", "-C", "1", "-W", "5", "-v"});
    EXPECT_NE(exporter_usage.output.find("$SYS/billing/v1/snapshot"), std::string::npos)
        << exporter_usage.output;
    const auto exporter_devices =
        Client("mosquitto_sub", {"-u", exporter_user_, "-P", exporter_password_, "-i",
                                 "device-reader", "-t", "devices/#", "-W", "3", "-v"});
    EXPECT_EQ(exporter_devices.output.find("devices/dev-1/state"), std::string::npos)
        << exporter_devices.output;
  }

  // The exporter kept its one connection and its exact counts: the broker never closed its
  // session for another client, and the junk publish was not delivered to it.
  const std::string broker_log = broker_->Log();
  EXPECT_EQ(broker_log.find("already connected, closing old connection"), std::string::npos)
      << broker_log;
  samples = Scrape(*exporter);
  EXPECT_EQ(FindValue(samples, "iotistic_mqtt_up"), 1.0);
  EXPECT_EQ(Sum(samples, "iotistic_mqtt_messages_total"), messages);
  EXPECT_EQ(Sum(samples, "iotistic_mqtt_payload_bytes_total"), bytes);
}

INSTANTIATE_TEST_SUITE_P(MeteringSources, BrokerAuthTest,
                         ::testing::Values("plugin", "subscription"),
                         [](const auto& info) { return info.param; });

}  // namespace
