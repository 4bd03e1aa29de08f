// The images `make images` builds, run here without a Docker engine (buildah run --isolation
// chroot shares the host's network): both binaries run from them as uid 65532; the exporter from
// its image serves the same /metrics as the host-built binary for the same PostgreSQL and
// Mosquitto; `provisioner render` from its image, with the baked chart, prints byte for byte what
// the host's prints; the runtime stage holds no shell, package manager or compiler, and every
// shared library resolves with the image's own loader; the broker image runs the chart's broker
// configuration with both of the project's plugins. Label "images" (make test-images).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "billing/common/base64.h"
#include "testbed.h"

namespace {

namespace fs = std::filesystem;
using namespace billing::testbed;

const std::string kBuildah = "buildah";
const std::string kVersion = PROJECT_VERSION;

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// A working container of an image (buildah from), removed at the end; Run executes in it.
class Container {
 public:
  explicit Container(const std::string& image) : image_(image) {
    const auto from = RunCommand({kBuildah, "from", "--pull-never", "--quiet", image});
    if (from.exit_code != 0) {
      throw std::runtime_error("buildah from " + image +
                               " failed (run `make images`): " + from.output);
    }
    name_ = Trim(from.output);
  }
  ~Container() {
    if (!mount_.empty()) RunCommand({kBuildah, "umount", name_});
    RunCommand({kBuildah, "rm", name_});
  }
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;

  const std::string& name() const { return name_; }

  /// buildah run argv: the image's own user unless `user` is given.
  std::vector<std::string> RunArgv(const std::vector<std::string>& command,
                                   const std::vector<std::pair<std::string, std::string>>& env = {},
                                   const std::string& user = "") const {
    std::vector<std::string> argv = {kBuildah, "run", "--isolation", "chroot"};
    if (!user.empty()) argv.insert(argv.end(), {"--user", user});
    for (const auto& [key, value] : env) argv.insert(argv.end(), {"--env", key + "=" + value});
    argv.push_back(name_);
    argv.push_back("--");
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
  }

  CommandResult Run(const std::vector<std::string>& command,
                    const std::vector<std::pair<std::string, std::string>>& env = {},
                    const std::string& user = "") const {
    return RunCommand(RunArgv(command, env, user));
  }

  /// The container's root filesystem on the host (buildah mount).
  const fs::path& Root() {
    if (mount_.empty()) {
      const auto mounted = RunCommand({kBuildah, "mount", name_});
      if (mounted.exit_code != 0) throw std::runtime_error("buildah mount: " + mounted.output);
      mount_ = Trim(mounted.output);
    }
    return mount_;
  }

  nlohmann::json Config() const {
    const auto inspect = RunCommand({kBuildah, "inspect", "--type", "image", image_});
    if (inspect.exit_code != 0) throw std::runtime_error("buildah inspect: " + inspect.output);
    return nlohmann::json::parse(inspect.output).at("OCIv1").at("config");
  }

 private:
  std::string image_;
  std::string name_;
  fs::path mount_;
};

std::string Image(const std::string& name) { return "iotistic/" + name + ":" + kVersion; }

// The image's config: nonroot user, the binary as entrypoint, the OCI labels.
void ExpectImageConfig(Container& container, const std::string& binary) {
  const auto config = container.Config();
  EXPECT_EQ(config.value("User", ""), "65532:65532");
  EXPECT_EQ(config.value("Entrypoint", nlohmann::json::array()),
            nlohmann::json::array({"/usr/bin/" + binary}));
  const auto labels = config.value("Labels", nlohmann::json::object());
  EXPECT_EQ(labels.value("org.opencontainers.image.version", ""), kVersion);
  const auto host_version =
      RunCommand({binary == "provisioner" ? PROVISIONER_PATH : BILLING_EXPORTER_PATH, "--version"});
  EXPECT_NE(host_version.output.find("(revision " +
                                     labels.value("org.opencontainers.image.revision", "?") + ")"),
            std::string::npos)
      << "image built from another revision than the host binary: run `make images`";
  for (const char* key : {"org.opencontainers.image.source", "org.opencontainers.image.licenses",
                          "org.opencontainers.image.description"}) {
    EXPECT_FALSE(labels.value(key, "").empty()) << key;
  }
}

// No shell, no package manager, no compiler: the only executables are the binary and the
// shared objects (the loader and libraries carry the x bit); nothing is writable by 65532 but
// /tmp and its home, so a read-only root filesystem takes nothing away from it.
void ExpectMinimalRuntime(Container& container, const std::string& binary) {
  const fs::path root = container.Root();
  for (const char* banned : {"bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/bash", "usr/bin/dash",
                             "bin/busybox", "usr/bin/apt", "usr/bin/apt-get", "usr/bin/dpkg",
                             "usr/bin/gcc", "usr/bin/g++", "usr/bin/cc", "usr/bin/c++",
                             "usr/bin/ld", "usr/bin/as", "usr/bin/perl", "usr/bin/python3"}) {
    EXPECT_FALSE(fs::exists(fs::symlink_status(root / banned))) << banned;
  }
  std::set<std::string> programs;
  std::set<std::string> writable;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat info {};
    if (lstat(it->path().c_str(), &info) != 0 || S_ISLNK(info.st_mode)) continue;
    const std::string path = "/" + fs::relative(it->path(), root).string();
    const std::string file = it->path().filename().string();
    if (S_ISREG(info.st_mode) && (info.st_mode & 0111) && file.find(".so") == std::string::npos) {
      programs.insert(path);
    }
    const bool mine = info.st_uid == 65532 && (info.st_mode & S_IWUSR);
    const bool group = info.st_gid == 65532 && (info.st_mode & S_IWGRP);
    if (mine || group || (info.st_mode & S_IWOTH)) writable.insert(path);
  }
  EXPECT_EQ(programs, std::set<std::string>({"/usr/bin/" + binary}));
  EXPECT_EQ(writable, std::set<std::string>({"/tmp", "/home/nonroot"}));

  // Every DT_NEEDED of the binary, recursively, resolved by the image's own loader.
  const auto listed =
      container.Run({"/lib64/ld-linux-x86-64.so.2", "--list", "/usr/bin/" + binary});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_EQ(listed.output.find("not found"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6"), std::string::npos)
      << listed.output;
}

// The uid of the process named `comm` below `pid` (buildah run's child in the chroot).
std::optional<int> UidBelow(pid_t pid, const std::string& comm) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream status(entry.path() / "status");
    std::string line;
    std::string process_name;
    std::optional<int> uid;
    pid_t parent = 0;
    while (std::getline(status, line)) {
      if (line.rfind("Name:\t", 0) == 0) process_name = line.substr(6);
      if (line.rfind("PPid:\t", 0) == 0) parent = std::stoi(line.substr(6));
      if (line.rfind("Uid:\t", 0) == 0) uid = std::stoi(line.substr(5));
    }
    if (process_name != comm) continue;
    for (pid_t up = parent; up > 1;) {  // is `pid` an ancestor?
      if (up == pid) return uid;
      std::ifstream parent_status("/proc/" + std::to_string(up) + "/status");
      pid_t next = 0;
      while (std::getline(parent_status, line)) {
        if (line.rfind("PPid:\t", 0) == 0) next = std::stoi(line.substr(6));
      }
      up = next;
    }
  }
  return std::nullopt;
}

TEST(ExporterImageTest, ConfigAndRuntimeStage) {
  Container container(Image("billing-exporter"));
  ExpectImageConfig(container, "billing-exporter");
  ExpectMinimalRuntime(container, "billing-exporter");
}

TEST(ExporterImageTest, VersionAndCheckConfigAsNonroot) {
  Container container(Image("billing-exporter"));
  const auto version = container.Run({"/usr/bin/billing-exporter", "--version"}, {}, "65532:65532");
  EXPECT_EQ(version.exit_code, 0) << version.output;
  EXPECT_EQ(version.output, RunCommand({BILLING_EXPORTER_PATH, "--version"}).output);
  const std::vector<std::pair<std::string, std::string>> env = {
      {"DATABASE_URL", "postgresql://u:p@127.0.0.1:5432/db"}, {"CUSTOMER_ID", "abc123"}};
  const auto good =
      container.Run({"/usr/bin/billing-exporter", "--check-config"}, env, "65532:65532");
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_NE(good.output.find("config ok"), std::string::npos) << good.output;
  const auto bad = container.Run({"/usr/bin/billing-exporter", "--check-config"},
                                 {{"CUSTOMER_ID", "Not An Id"}}, "65532:65532");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("CUSTOMER_ID"), std::string::npos) << bad.output;
}

// Samples by name and labels; the values of the families that describe the process rather than
// the database and broker may differ between two exporters: how long a sample took, when it
// finished, and how many samples failed since the process started (a first sample that raced the
// broker's CONNACK counts one on either side, now and then). A lasting failure still shows: the
// collector's up gauge and every series it serves differ.
std::map<std::string, double> Comparable(const std::vector<MetricSample>& samples) {
  std::map<std::string, double> out;
  for (const auto& sample : samples) {
    std::string key = sample.name + "{";
    for (const auto& [name, value] : sample.labels) key += name + "=\"" + value + "\",";
    key += "}";
    const bool process = sample.name == "iotistic_exporter_sample_duration_seconds" ||
                         sample.name == "iotistic_exporter_last_sample_timestamp_seconds" ||
                         sample.name == "iotistic_exporter_sample_errors_total";
    out[key] = process ? 0 : sample.value;
  }
  return out;
}

std::string Diff(const std::map<std::string, double>& host,
                 const std::map<std::string, double>& image) {
  std::ostringstream out;
  for (const auto& [key, value] : host) {
    const auto other = image.find(key);
    if (other == image.end()) {
      out << "only on the host: " << key << "\n";
    } else if (other->second != value && !(std::isnan(value) && std::isnan(other->second))) {
      out << key << ": host " << value << ", image " << other->second << "\n";
    }
  }
  for (const auto& [key, value] : image) {
    if (!host.contains(key)) out << "only in the image: " << key << "\n";
  }
  return out.str();
}

TEST(ExporterImageTest, ServesTheSameMetricsAsTheHostBinary) {
  PostgresServer postgres;
  postgres.CreateDatabase("iotistic");
  postgres.Psql(
      "CREATE TABLE readings (id bigserial PRIMARY KEY, device text, value double precision);"
      "INSERT INTO readings (device, value) SELECT 'd' || (i % 7), i FROM generate_series(1, "
      "5000) i; CREATE TABLE devices (id text PRIMARY KEY); INSERT INTO devices VALUES ('a'), "
      "('b'); ANALYZE;",
      "iotistic");
  // $SYS once an hour: the retained values the broker published at start are what both
  // exporters read, so the broker's own counters do not move between their samples.
  MosquittoServer broker(3600);
  auto env = [&](const std::string& client_id) {
    return std::vector<std::pair<std::string, std::string>>{
        {"DATABASE_URL", postgres.Url("iotistic")},
        {"MQTT_URL", broker.Url()},
        {"MQTT_CLIENT_ID", client_id},
        {"CUSTOMER_ID", "abc123"},
        {"SAMPLE_INTERVAL", "1s"}};
  };
  ExporterProcess host(BILLING_EXPORTER_PATH, {}, env("host-exporter"));

  Container container(Image("billing-exporter"));
  TempDir dir("image-exporter");
  const int port = FreePort();
  Process image({container.RunArgv(
                     {"/usr/bin/billing-exporter", "--listen", "127.0.0.1:" + std::to_string(port)},
                     env("image-exporter")),
                 {},
                 {},
                 dir.path() / "image-exporter.log",
                 std::nullopt});
  const std::string image_url = "http://127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(host.WaitHealthy()) << host.process().Log();
  ASSERT_TRUE(WaitFor([&] { return HttpGet(image_url + "/healthz").status == 200; },
                      std::chrono::seconds(60)))
      << image.Log();
  // The image's exporter runs as the image's user, 65532, not as root.
  EXPECT_EQ(UidBelow(image.pid(), "billing-exporte"), 65532);

  auto scrape_image = [&] {
    const auto response = HttpGet(image_url + "/metrics");
    return response.status == 200 ? ParseMetricsText(response.body) : std::vector<MetricSample>{};
  };
  auto both_up = [&] {
    const auto a = host.Scrape();
    const auto b = scrape_image();
    return FindValue(a, "iotistic_postgres_up") == 1 && FindValue(a, "iotistic_mqtt_up") == 1 &&
           FindValue(b, "iotistic_postgres_up") == 1 && FindValue(b, "iotistic_mqtt_up") == 1;
  };
  ASSERT_TRUE(WaitFor(both_up, std::chrono::seconds(60))) << image.Log();
  // Traffic both exporters see: they are subscribed to '#' on the same broker.
  for (int i = 0; i < 20; ++i) {
    const auto published = RunCommand(
        {"mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(broker.port()), "-q", "1", "-t",
         "devices/d" + std::to_string(i % 3) + "/telemetry", "-m", std::string(10 + i, 'x')});
    ASSERT_EQ(published.exit_code, 0) << published.output;
  }

  std::string difference = "never scraped";
  std::map<std::string, double> last;
  const bool same = WaitFor(
      [&] {
        const auto host_samples = host.Scrape();
        const auto a = Comparable(host_samples);
        const auto b = Comparable(scrape_image());
        difference = Diff(a, b);
        last = a;
        // Equal, and after both counted every message published above.
        return difference.empty() && Sum(host_samples, "iotistic_mqtt_messages_total") >= 20;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(500));
  EXPECT_TRUE(same) << difference << "image exporter's log:\n"
                    << image.Log() << "host exporter's log:\n"
                    << host.process().Log();
  EXPECT_GT(last.size(), 20u);
}

TEST(ProvisionerImageTest, ConfigAndRuntimeStage) {
  Container container(Image("provisioner"));
  ExpectImageConfig(container, "provisioner");
  ExpectMinimalRuntime(container, "provisioner");
  // The chart is baked where manifests/provisioner/40-deployment.yaml points.
  EXPECT_TRUE(
      fs::exists(container.Root() / "usr/share/iotistic/charts/customer-instance/Chart.yaml"));
}

// The broker users of tests/provisioner/render/broker-users.yaml.
const std::string kExporterBrokerPassword = "Exp0rter-Mqtt-Passw0rd";
const std::string kExporterBrokerHash =
    "$7$101$AQIDBAUGBwgJCgsM$FDlxf28KiDAlbXClbWSBLOEYSeLhupZQiW9BgRi0kIT+"
    "tvobRpClCZV9YruaNpxzNuyEaoksKbUI+3JsajBzKQ==";
const std::string kDeviceBrokerPassword = "Dev1ce-Mqtt-Passw0rd";
const std::string kDeviceBrokerHash =
    "$7$101$DQ4PEBESExQVFhcY$nDSoMgYAszqT1AVWWgk7UhWp7CmxnufMor3xlo37v0W+"
    "sg2xljkijbt4PwxKHZHvNX3EkCdpn1fV/SM8OQ/LpA==";

TEST(ProvisionerImageTest, RenderFromTheImageEqualsTheHostsByteForByte) {
  Container container(Image("provisioner"));
  const auto version = container.Run({"/usr/bin/provisioner", "--version"}, {}, "65532:65532");
  EXPECT_EQ(version.exit_code, 0) << version.output;
  EXPECT_EQ(version.output, RunCommand({PROVISIONER_PATH, "--version"}).output);

  const std::vector<std::string> sets = {
      "--set", "customer.id=abc123", "--set", "customer.email=john@example.com", "--set",
      "customer.companyName=Acme Corp", "--set", "license.key=eyJhbGc.test.sig", "--set",
      "postgres.password=s3cret-Passw0rd", "--set", "exporter.serviceMonitor.enabled=true",
      // Given, as every generated secret must be for the two renders to agree.
      "--set", "mosquitto.auth.exporter.password=" + kExporterBrokerPassword, "--set",
      "mosquitto.auth.exporter.passwordHash=" + kExporterBrokerHash, "--set",
      "mosquitto.auth.device.password=" + kDeviceBrokerPassword, "--set",
      "mosquitto.auth.device.passwordHash=" + kDeviceBrokerHash};
  std::vector<std::string> host_argv = {
      PROVISIONER_PATH, "render", "--chart",
      std::string(BILLING_SOURCE_DIR) + "/manifests/charts/customer-instance"};
  host_argv.insert(host_argv.end(), sets.begin(), sets.end());
  const auto host = RunCommand(host_argv);
  ASSERT_EQ(host.exit_code, 0) << host.output;
  ASSERT_NE(host.output.find("kind: ServiceMonitor"), std::string::npos);

  // The baked chart by default, and through PROVISIONER_CHART_DIR as the Deployment sets it.
  std::vector<std::string> image_argv = {"/usr/bin/provisioner", "render"};
  image_argv.insert(image_argv.end(), sets.begin(), sets.end());
  const auto baked = container.Run(image_argv, {}, "65532:65532");
  EXPECT_EQ(baked.exit_code, 0) << baked.output;
  EXPECT_EQ(baked.output, host.output);
  const auto from_env = container.Run(
      image_argv, {{"PROVISIONER_CHART_DIR", "/usr/share/iotistic/charts/customer-instance"}},
      "65532:65532");
  EXPECT_EQ(from_env.output, host.output);
}

// The rendered objects of `provisioner render ARGS` by kind/name.
std::map<std::string, YAML::Node> RenderedObjects(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {
      PROVISIONER_PATH, "render", "--chart",
      std::string(BILLING_SOURCE_DIR) + "/manifests/charts/customer-instance"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto rendered = RunCommand(argv);
  if (rendered.exit_code != 0) throw std::runtime_error("provisioner render: " + rendered.output);
  std::map<std::string, YAML::Node> objects;
  for (const auto& document : YAML::LoadAll(rendered.output)) {
    if (!document.IsMap()) continue;
    objects[document["kind"].as<std::string>() + "/" +
            document["metadata"]["name"].as<std::string>()] = document;
  }
  return objects;
}

std::string SecretValue(const YAML::Node& secret, const std::string& key) {
  const auto decoded = billing::common::Base64Decode(secret["data"][key].as<std::string>());
  if (!decoded) throw std::runtime_error("Secret value " + key + " is not base64");
  return *decoded;
}

// The broker image with the chart's broker configuration (mosquitto.conf, password file, ACL;
// only the listener is 127.0.0.1 and a free port): both plugins load from the image's paths,
// it runs as its own uid 1883, the client-id guard keeps the exporter's client id for the
// exporter's user, and the exporter in plugin mode bills what a device publishes from the billing
// plugin's snapshots.
TEST(MosquittoImageTest, RunsTheChartsBrokerWithBothPlugins) {
  Container container(Image("mosquitto"));
  const auto config = container.Config();
  EXPECT_EQ(config.value("User", ""), "1883:1883");
  EXPECT_EQ(config.value("Entrypoint", nlohmann::json::array()),
            nlohmann::json::array({"/usr/sbin/mosquitto"}));
  const auto revision = config.value("Labels", nlohmann::json::object())
                            .value("org.opencontainers.image.revision", "?");
  EXPECT_NE(RunCommand({PROVISIONER_PATH, "--version"}).output.find("(revision " + revision + ")"),
            std::string::npos)
      << "image built from another revision than the host binaries: run `make images`";

  auto objects = RenderedObjects(
      {"--set", "customer.id=abc123", "--set", "license.key=eyJhbGc.test.sig", "--set",
       "mosquitto.sysInterval=1", "--set", "mosquitto.metering.snapshotInterval=1", "--set",
       "mosquitto.auth.exporter.password=" + kExporterBrokerPassword, "--set",
       "mosquitto.auth.exporter.passwordHash=" + kExporterBrokerHash, "--set",
       "mosquitto.auth.device.password=" + kDeviceBrokerPassword, "--set",
       "mosquitto.auth.device.passwordHash=" + kDeviceBrokerHash});
  const auto& secret = objects.at("Secret/customer-abc123-secrets");
  const int port = FreePort();
  std::istringstream rendered_config(
      objects.at("ConfigMap/customer-abc123-mosquitto-config")["data"]["mosquitto.conf"]
          .as<std::string>());
  std::string broker_config = "listener " + std::to_string(port) + " 127.0.0.1\n";
  for (std::string line; std::getline(rendered_config, line);) {
    if (!line.starts_with("listener ") && !line.starts_with("protocol ")) {
      broker_config += line + "\n";
    }
  }
  ASSERT_NE(broker_config.find("plugin /usr/lib/iotistic/billing_mosquitto_plugin.so"),
            std::string::npos)
      << broker_config;
  const fs::path root = container.Root();
  std::ofstream(root / "mosquitto/config/mosquitto.conf") << broker_config;
  std::ofstream(root / "mosquitto/auth/passwords") << SecretValue(secret, "MOSQUITTO_PASSWORDS");
  std::ofstream(root / "mosquitto/auth/acl") << SecretValue(secret, "MOSQUITTO_ACL");

  TempDir dir("image-mosquitto");
  Process broker(
      {container.RunArgv({"/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"}),
       {},
       {},
       dir.path() / "mosquitto.log",
       std::nullopt});
  const std::string exporter_user = SecretValue(secret, "MQTT_EXPORTER_USERNAME");
  const std::string device_user = SecretValue(secret, "MQTT_DEVICE_USERNAME");
  auto client = [&](const std::string& tool, std::vector<std::string> args) {
    std::vector<std::string> argv = {tool, "-h", "127.0.0.1", "-p", std::to_string(port)};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, {}, std::chrono::seconds(30));
  };
  // The billing plugin's retained snapshot, readable by the exporter's user: the broker is up
  // with both plugins loaded (it refuses to start when a plugin does not load).
  ASSERT_TRUE(WaitFor(
      [&] {
        return client("mosquitto_sub",
                      {"-u", exporter_user, "-P", kExporterBrokerPassword, "-i", "usage-reader",
                       "-t", "$SYS/billing/v1/snapshot", "-C", "1", "-W", "2"})
                   .exit_code == 0;
      },
      std::chrono::seconds(60)))
      << broker.Log();
  EXPECT_EQ(UidBelow(broker.pid(), "mosquitto"), 1883);
  const auto takeover =
      client("mosquitto_sub", {"-u", device_user, "-P", kDeviceBrokerPassword, "-i",
                               "billing-exporter-abc123", "-t", "x", "-W", "2"});
  EXPECT_NE(takeover.output.find("not authorised"), std::string::npos) << takeover.output;

  // The host's exporter with the rendered exporter config (mqtt.source: plugin).
  const auto exporter_config = dir.path() / "config.yaml";
  std::ofstream(exporter_config)
      << objects.at("ConfigMap/customer-abc123-exporter-config")["data"]["config.yaml"]
             .as<std::string>();
  ExporterProcess exporter(BILLING_EXPORTER_PATH, {"--config", exporter_config.string()},
                           {{"MQTT_URL", "tcp://127.0.0.1:" + std::to_string(port)},
                            {"MQTT_USERNAME", exporter_user},
                            {"MQTT_PASSWORD", kExporterBrokerPassword},
                            {"MQTT_CLIENT_ID", "billing-exporter-abc123"},
                            {"SAMPLE_INTERVAL", "300ms"}});
  ASSERT_TRUE(exporter.WaitHealthy()) << exporter.process().Log();
  for (int i = 0; i < 5; ++i) {
    const auto published =
        client("mosquitto_pub", {"-u", device_user, "-P", kDeviceBrokerPassword, "-q", "1", "-t",
                                 "devices/d1/telemetry", "-m", std::string(6000, 'x')});
    ASSERT_EQ(published.exit_code, 0) << published.output;
  }
  // 6,000 bytes of payload and 20 of topic: two 5 KB units each.
  EXPECT_TRUE(WaitFor(
      [&] {
        const auto samples = exporter.Scrape();
        return FindValue(samples, "iotistic_mqtt_broker_publish_messages_received_total") == 5 &&
               FindValue(samples, "iotistic_mqtt_message_units_total") == 10;
      },
      std::chrono::seconds(30)))
      << exporter.process().Log() << broker.Log();
}

}  // namespace
