// device-simulator: publishes realistic sensor telemetry for K devices to an MQTT broker, at a set
// rate or as fast as the broker takes it, and prints exactly what it sent as one JSON line:
//   {"messages":N,"payload_bytes":B,"devices":K,"qos":Q,"seconds":S,"rate":R}
// With QoS 1 a message counts as sent when the broker acknowledged it; with QoS 0 when it was
// written to the connection. Used by the tests, `make demo` and the benchmarks.
#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <deque>
#include <iostream>
#include <random>
#include <string>
#include <thread>

namespace {

std::atomic<bool> g_stop{false};

struct Options {
  std::string url = "tcp://127.0.0.1:1883";
  int devices = 10;
  long messages = 0;      // total to send; 0: no limit (then --duration or Ctrl-C ends it)
  double duration_s = 0;  // 0: no limit
  double rate = 0;        // messages per second over all devices; 0: as fast as possible
  int qos = 1;
  int window = 100;      // messages in flight (unacknowledged) at most
  int payload_min = 40;  // bytes of JSON, before padding
  int payload_max = 400;
  std::string topic_prefix = "devices";
  std::string client_id = "device-simulator";
  std::uint64_t seed = 1;
};

constexpr const char* kUsage =
    "usage: device-simulator [--url tcp://127.0.0.1:1883] [--devices K] [--messages N]\n"
    "  [--duration SECONDS] [--rate MSGS_PER_S (0: as fast as possible)] [--qos 0|1]\n"
    "  [--window IN_FLIGHT] [--payload-max BYTES (a reading is ~110 bytes; larger ones are "
    "padded)]\n"
    "  [--topic-prefix devices] [--client-id ID]\n"
    "  [--seed N]\n"
    "Publishes to <prefix>/dev-NNNNN/telemetry; prints one JSON line with what was sent.\n";

bool ParseOptions(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return false;
    const std::string value = argv[++i];
    try {
      if (flag == "--url")
        o.url = value;
      else if (flag == "--devices")
        o.devices = std::stoi(value);
      else if (flag == "--messages")
        o.messages = std::stol(value);
      else if (flag == "--duration")
        o.duration_s = std::stod(value);
      else if (flag == "--rate")
        o.rate = std::stod(value);
      else if (flag == "--qos")
        o.qos = std::stoi(value);
      else if (flag == "--window")
        o.window = std::stoi(value);
      else if (flag == "--payload-max")
        o.payload_max = std::stoi(value);
      else if (flag == "--topic-prefix")
        o.topic_prefix = value;
      else if (flag == "--client-id")
        o.client_id = value;
      else if (flag == "--seed")
        o.seed = std::stoull(value);
      else
        return false;
    } catch (const std::exception&) {
      return false;
    }
  }
  return o.devices > 0 && (o.qos == 0 || o.qos == 1) && o.window > 0 &&
         o.payload_max >= o.payload_min && o.messages >= 0 && o.rate >= 0 && o.duration_s >= 0 &&
         (o.messages > 0 || o.duration_s > 0);
}

std::string DeviceName(int device) {
  char name[16];
  std::snprintf(name, sizeof name, "dev-%05d", device);
  return name;
}

// A reading like the platform's devices send; padded so sizes vary across the configured range.
std::string Telemetry(const std::string& device, long seq, std::mt19937_64& rng, int payload_min,
                      int payload_max) {
  std::uniform_real_distribution<double> temperature(15, 30), humidity(20, 80), battery(0, 1);
  char body[256];
  const int n =
      std::snprintf(body, sizeof body,
                    "{\"device\":\"%s\",\"seq\":%ld,\"temperature_c\":%.2f,\"humidity_pct\":%.1f,"
                    "\"battery\":%.2f,\"fw\":\"1.4.2\"",
                    device.c_str(), seq, temperature(rng), humidity(rng), battery(rng));
  std::string payload(body, static_cast<std::size_t>(n));
  const int target = std::uniform_int_distribution<int>(payload_min, payload_max)(rng);
  if (static_cast<int>(payload.size()) + 10 < target) {
    payload += ",\"pad\":\"";
    payload.append(static_cast<std::size_t>(target - static_cast<int>(payload.size()) - 2), 'x');
    payload += '"';
  }
  payload += '}';
  return payload;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseOptions(argc, argv, o)) {
    std::cerr << kUsage;
    return 2;
  }
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });

  mqtt::async_client client(o.url, o.client_id, mqtt::create_options(MQTTVERSION_3_1_1));
  auto connect_options = mqtt::connect_options_builder()
                             .clean_session(true)
                             .keep_alive_interval(std::chrono::seconds(30))
                             .max_inflight(o.window)
                             .finalize();
  try {
    client.connect(connect_options)->wait();
  } catch (const std::exception& e) {
    std::cerr << "device-simulator: cannot connect to " << o.url << ": " << e.what() << "\n";
    return 1;
  }

  std::mt19937_64 rng(o.seed);
  std::vector<std::string> topics;
  std::vector<std::string> devices;
  for (int d = 1; d <= o.devices; ++d) {
    devices.push_back(DeviceName(d));
    topics.push_back(o.topic_prefix + "/" + devices.back() + "/telemetry");
  }

  // Tokens of messages not yet confirmed, oldest first; each carries its payload size.
  std::deque<std::pair<mqtt::delivery_token_ptr, std::size_t>> in_flight;
  long sent = 0;
  std::uint64_t sent_bytes = 0;
  std::string error;
  auto settle_oldest = [&] {
    auto [token, bytes] = std::move(in_flight.front());
    in_flight.pop_front();
    try {
      token->wait();
      ++sent;
      sent_bytes += bytes;
    } catch (const std::exception& e) {
      if (error.empty()) error = e.what();
    }
  };

  const auto start = std::chrono::steady_clock::now();
  long published = 0;
  while (!g_stop && error.empty()) {
    if (o.messages > 0 && published >= o.messages) break;
    const auto now = std::chrono::steady_clock::now();
    if (o.duration_s > 0 && now - start >= std::chrono::duration<double>(o.duration_s)) break;
    if (o.rate > 0) {
      // Pace against the schedule from the start, so the average rate is exact.
      const auto due = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(published / o.rate));
      if (due > now) std::this_thread::sleep_until(due);
    }
    if (static_cast<int>(in_flight.size()) >= o.window) settle_oldest();
    const int device = static_cast<int>(published % o.devices);
    auto payload =
        Telemetry(devices[device], published / o.devices, rng, o.payload_min, o.payload_max);
    const std::size_t bytes = payload.size();
    try {
      auto token = client.publish(topics[device], std::move(payload), o.qos, false);
      in_flight.emplace_back(std::move(token), bytes);
      ++published;
    } catch (const mqtt::exception& e) {
      if (e.get_return_code() == MQTTASYNC_MAX_MESSAGES_INFLIGHT && !in_flight.empty()) {
        settle_oldest();  // the client's own window is full; confirm one and retry
        continue;
      }
      error = e.what();
    }
  }
  while (!in_flight.empty()) settle_oldest();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  try {
    client.disconnect()->wait();
  } catch (const std::exception&) {
  }
  std::printf(
      "{\"messages\":%ld,\"payload_bytes\":%llu,\"devices\":%d,\"qos\":%d,\"seconds\":%.3f,"
      "\"rate\":%.1f}\n",
      sent, static_cast<unsigned long long>(sent_bytes), o.devices, o.qos, seconds,
      seconds > 0 ? sent / seconds : 0.0);
  std::fflush(stdout);
  if (!error.empty()) {
    std::cerr << "device-simulator: stopped after an error: " << error << "\n";
    return 1;
  }
  return 0;
}
