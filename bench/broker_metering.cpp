// The broker's and the exporter's CPU per message, side by side in one run, for each way of
// metering: none (the broker and one ordinary consumer), subscription (the exporter subscribed to
// `#` at the publishers' QoS: the broker delivers everything a second time) and plugin (the billing
// plugin counts inside the broker; the exporter reads its snapshots). The publishers are this
// program's own raw MQTT clients (pre-encoded PUBLISH packets, many per write), so they are not
// the bottleneck. Every run also checks that the exporter counted every message.
//
//   build/bench/broker_metering [--messages 300000] [--rate 40000] [--qos 0,1,2]
//                               [--exporter PATH] [--repeat 1] [--inflight 20]
//                               [--modes none,subscription,plugin]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "testbed.h"

namespace {

using namespace billing::testbed;
using namespace std::chrono_literals;

constexpr int kPublishers = 2;
constexpr int kTopics = 500;
constexpr int kPayload = 200;
int g_inflight =
    20;  // the broker's max_inflight_messages (Mosquitto's default); QoS 2 beyond it is refused

void PutLength(std::string& out, std::size_t n) {
  do {
    std::uint8_t b = n % 128;
    n /= 128;
    if (n > 0) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (n > 0);
}

void PutString(std::string& out, std::string_view s) {
  out.push_back(static_cast<char>(s.size() >> 8));
  out.push_back(static_cast<char>(s.size() & 0xff));
  out.append(s);
}

void SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("send failed");
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// One raw publisher: `count` messages at `rate`/s, QoS `qos`; returns the messages sent (and, for
// QoS 1 and 2, acknowledged).
long Publish(int port, int id, long count, double rate, int qos) {
  // Closed on every return, also the early ones of a refused connection.
  struct Socket {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ~Socket() {
      if (fd >= 0) ::close(fd);
    }
  } socket;
  const int fd = socket.fd;
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return 0;
  std::string connect;
  std::string body;
  PutString(body, "MQTT");
  body += std::string("\x04\x02\x00\x3c", 4);  // 3.1.1, clean session, keep alive 60 s
  PutString(body, "bench-pub-" + std::to_string(id));
  connect.push_back(0x10);
  PutLength(connect, body.size());
  connect += body;
  SendAll(fd, connect);
  char ack[4];
  if (::recv(fd, ack, 4, MSG_WAITALL) != 4) return 0;

  const std::string payload(kPayload, 'x');
  std::vector<std::string> topics;
  for (int t = 0; t < kTopics; ++t)
    topics.push_back("devices/dev-" + std::to_string(t) + "/telemetry");
  std::string out, in;
  long sent = 0, acked = 0, inflight = 0;
  std::uint16_t next_id = 1;
  const auto start = std::chrono::steady_clock::now();
  char buffer[65536];
  while (acked < count) {
    // How many the schedule allows now.
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const long due = std::min(count, static_cast<long>(elapsed * rate) + 1);
    out.clear();
    while (sent < due && (qos != 2 || inflight < g_inflight)) {
      const auto& topic = topics[static_cast<std::size_t>(sent % kTopics)];
      out.push_back(static_cast<char>(0x30 | (qos << 1)));
      PutLength(out, 2 + topic.size() + (qos > 0 ? 2 : 0) + payload.size());
      PutString(out, topic);
      if (qos > 0) {
        out.push_back(static_cast<char>(next_id >> 8));
        out.push_back(static_cast<char>(next_id & 0xff));
        next_id = next_id == 65535 ? 1 : next_id + 1;
      }
      out += payload;
      ++sent;
      ++inflight;
    }
    if (!out.empty()) SendAll(fd, out);
    if (qos == 0) {
      acked = sent;
      inflight = 0;
    }
    // Acknowledgements are 4-byte packets: PUBACK (QoS 1); PUBREC answered by PUBREL, then
    // PUBCOMP (QoS 2).
    pollfd p{fd, POLLIN, 0};
    const int wait_ms = sent < due ? 1 : (qos > 0 && sent == count ? 10 : 1);
    if (qos == 0 && sent >= count) break;
    if (::poll(&p, 1, wait_ms) > 0) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      in.append(buffer, static_cast<std::size_t>(n));
      std::string replies;
      std::size_t at = 0;
      for (; at + 4 <= in.size(); at += 4) {
        const auto type = static_cast<std::uint8_t>(in[at]) >> 4;
        if (type == 4 || type == 7) {  // PUBACK, PUBCOMP
          ++acked;
          --inflight;
        } else if (type == 5) {  // PUBREC
          replies += std::string("\x62\x02", 2) + in.substr(at + 2, 2);
        }
      }
      in.erase(0, at);
      if (!replies.empty()) SendAll(fd, replies);
    }
  }
  SendAll(fd, std::string("\xe0\x00", 2));
  return acked;
}

struct Run {
  std::string mode;
  int qos = 0;
  long sent = 0;
  double counted = 0;
  double seconds = 0;
  double broker_us = 0;
  double exporter_us = 0;
};

Run Measure(const std::string& mode, int qos, long messages, double rate,
            const std::string& exporter_path, const std::string& plugin_path) {
  TempDir dir;
  const std::string plugin_config = "plugin " + plugin_path +
                                    "\nplugin_opt_billing_snapshot_interval 1\n"
                                    "plugin_opt_billing_unmetered_client_ids bench-exporter\n";
  MosquittoServer broker(10, "max_queued_messages 1000000\nmax_inflight_messages " +
                                 std::to_string(g_inflight) + "\n" +
                                 (mode == "plugin" ? plugin_config : std::string()));
  // The ordinary consumer every run has: QoS 0, so its own deliveries cost the same each time.
  Process consumer({.argv = {"mosquitto_sub", "-h", "127.0.0.1", "-p",
                             std::to_string(broker.port()), "-q", "0", "-t", "devices/#"},
                    .env = {},
                    .unset_env = {},
                    .log_path = "/dev/null",
                    .run_as_user = std::nullopt});
  std::unique_ptr<ExporterProcess> exporter;
  if (mode != "none") {
    const auto config = dir.path() / "exporter.yaml";
    std::ofstream(config) << "mqtt: {client_id: bench-exporter, "
                          << (g_inflight != 20
                                  ? "broker_max_inflight: " + std::to_string(g_inflight) + ", "
                                  : std::string())
                          << "qos: " << qos << (mode == "plugin" ? ", source: plugin" : "")
                          << "}\n";
    exporter = std::make_unique<ExporterProcess>(
        exporter_path, std::vector<std::string>{"--config", config.string()},
        std::vector<std::pair<std::string, std::string>>{{"MQTT_URL", broker.Url()},
                                                         {"SAMPLE_INTERVAL", "500ms"}});
    if (!exporter->WaitHealthy() ||
        !WaitFor([&] { return FindValue(exporter->Scrape(), "iotistic_mqtt_up") == 1.0; }, 30s)) {
      throw std::runtime_error("exporter did not connect: " + exporter->process().Log());
    }
  }
  std::this_thread::sleep_for(1s);  // the consumer subscribes
  const pid_t broker_pid = [&] {
    const auto out = RunCommand({"sh", "-c",
                                 "ss -ltnp 'sport = :" + std::to_string(broker.port()) +
                                     "' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2"});
    return static_cast<pid_t>(std::stol(out.output));
  }();
  const double broker0 = ProcessCpuSeconds(broker_pid);
  const double exporter0 = exporter ? ProcessCpuSeconds(exporter->process().pid()) : 0;
  const auto start = std::chrono::steady_clock::now();
  std::atomic<long> sent{0};
  std::vector<std::thread> publishers;
  for (int p = 0; p < kPublishers; ++p) {
    publishers.emplace_back([&, p] {
      sent += Publish(broker.port(), p, messages / kPublishers, rate / kPublishers, qos);
    });
  }
  for (auto& t : publishers) t.join();
  Run run{mode, qos, sent.load()};
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto counted = [&] {
    if (!exporter) return static_cast<double>(run.sent);
    const auto s = exporter->Scrape();
    return mode == "plugin"
               ? FindValue(s, "iotistic_mqtt_broker_publish_messages_received_total").value_or(0)
               : Sum(s, "iotistic_mqtt_messages_total");
  };
  WaitFor([&] { return counted() >= static_cast<double>(run.sent); }, 30s, 100ms);
  run.counted = counted();
  run.broker_us = 1e6 * (ProcessCpuSeconds(broker_pid) - broker0) / static_cast<double>(run.sent);
  run.exporter_us = exporter ? 1e6 * (ProcessCpuSeconds(exporter->process().pid()) - exporter0) /
                                   static_cast<double>(run.sent)
                             : 0;
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  long messages = 300000;
  double rate = 40000;
  std::vector<int> qos_levels = {0, 1, 2};
  std::vector<std::string> modes = {"none", "subscription", "plugin"};
  std::string exporter_path = BILLING_EXPORTER_PATH;
  int repeat = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--messages")
      messages = std::stol(value);
    else if (flag == "--rate")
      rate = std::stod(value);
    else if (flag == "--exporter")
      exporter_path = value;
    else if (flag == "--repeat")
      repeat = std::stoi(value);
    else if (flag == "--inflight")
      g_inflight = std::stoi(value);
    else if (flag == "--modes") {
      modes.clear();
      std::stringstream list(value);
      for (std::string m; std::getline(list, m, ',');) modes.push_back(m);
    } else if (flag == "--qos") {
      qos_levels.clear();
      for (char c : value)
        if (c >= '0' && c <= '2') qos_levels.push_back(c - '0');
    }
  }
  std::printf("%-13s %4s %9s %9s %10s %9s %14s %16s\n", "metering", "qos", "sent", "counted",
              "rate/s", "seconds", "broker us/msg", "exporter us/msg");
  for (int r = 0; r < repeat; ++r) {
    for (int qos : qos_levels) {
      for (const auto& mode : modes) {
        try {
          const Run run = Measure(mode, qos, messages, rate, exporter_path, BILLING_PLUGIN_PATH);
          std::printf("%-13s %4d %9ld %9.0f %10.0f %9.2f %14.2f %16.2f\n", run.mode.c_str(),
                      run.qos, run.sent, run.counted, static_cast<double>(run.sent) / run.seconds,
                      run.seconds, run.broker_us, run.exporter_us);
          std::fflush(stdout);
        } catch (const std::exception& e) {
          std::printf("%-13s %4d failed: %s\n", mode.c_str(), qos, e.what());
        }
      }
    }
  }
  return 0;
}
