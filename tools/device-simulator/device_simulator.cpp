// device-simulator: publishes realistic sensor telemetry for K devices to an MQTT broker, at a set
// rate or as fast as the broker takes it, and prints exactly what it sent as one JSON line:
//   {"messages":N,"payload_bytes":B,"devices":K,"qos":Q,"seconds":S,"rate":R}
// With QoS 1 a message counts as sent when the broker acknowledged it; with QoS 0 when it was
// written to the connection, and every connection makes one round trip before it closes so that
// the broker has read them all. Used by the tests, `make demo` and the benchmarks.
//
// With --connections per-device every device is its own MQTT client (client id dev-NNNNN, user
// name <username-prefix>-NNNNN when set), and after the summary it prints one line per device with
// what the broker should meter for it (the ground truth of the billing plugin's tests):
//   {"device":"dev-00001","client_id":...,"username":...,"published":N,"payload":B,"topic":T,
//    "units":U,"connected_ms":C,"connections":K}
// --abort-at-end 1 then ends the process without DISCONNECT (a device that dies).
#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

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
  bool per_device = false;      // --connections per-device
  std::string username_prefix;  // per-device: user names <prefix>-NNNNN
  std::string password;
  int retain_every = 0;  // every Nth message of a device is retained; 0: none
  int reconnects = 0;    // per-device: each device reconnects this many times along the way
  bool abort_at_end = false;
  int first_device = 1;  // device numbers start here (two simulators side by side)
};

constexpr const char* kUsage =
    "usage: device-simulator [--url tcp://127.0.0.1:1883] [--devices K] [--messages N]\n"
    "  [--duration SECONDS] [--rate MSGS_PER_S (0: as fast as possible)] [--qos 0|1|2]\n"
    "  [--window IN_FLIGHT] [--payload-max BYTES (a reading is ~110 bytes; larger ones are "
    "padded)]\n"
    "  [--topic-prefix devices] [--client-id ID] [--seed N] [--payload-min BYTES]\n"
    "  [--connections shared|per-device] [--username-prefix P] [--password PW]\n"
    "  [--retain-every N] [--reconnects R] [--abort-at-end 0|1] [--first-device N]\n"
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
      else if (flag == "--payload-min")
        o.payload_min = std::stoi(value);
      else if (flag == "--connections" && (value == "shared" || value == "per-device"))
        o.per_device = value == "per-device";
      else if (flag == "--username-prefix")
        o.username_prefix = value;
      else if (flag == "--password")
        o.password = value;
      else if (flag == "--retain-every")
        o.retain_every = std::stoi(value);
      else if (flag == "--reconnects")
        o.reconnects = std::stoi(value);
      else if (flag == "--abort-at-end")
        o.abort_at_end = value == "1";
      else if (flag == "--first-device")
        o.first_device = std::stoi(value);
      else
        return false;
    } catch (const std::exception&) {
      return false;
    }
  }
  return o.devices > 0 && o.qos >= 0 && o.qos <= 2 && o.window > 0 && o.retain_every >= 0 &&
         o.reconnects >= 0 && o.first_device >= 0 && (o.per_device || o.reconnects == 0) &&
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

// What one device sent, as the broker's billing plugin should meter it.
struct DeviceTruth {
  std::string client_id;
  std::string username;
  long published = 0;
  std::uint64_t payload = 0;
  std::uint64_t topic = 0;
  std::uint64_t units = 0;
  std::chrono::steady_clock::duration connected{};
  int connections = 0;
  std::chrono::steady_clock::time_point connected_at{};
  bool connected_now = false;
};

std::uint64_t Units(std::uint64_t bytes) { return bytes == 0 ? 1 : (bytes + 5119) / 5120; }

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseOptions(argc, argv, o)) {
    std::cerr << kUsage;
    return 2;
  }
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });

  std::mt19937_64 rng(o.seed);
  std::vector<std::string> topics;
  std::vector<std::string> devices;
  std::vector<DeviceTruth> truth(static_cast<std::size_t>(o.devices));
  for (int d = 0; d < o.devices; ++d) {
    devices.push_back(DeviceName(o.first_device + d));
    topics.push_back(o.topic_prefix + "/" + devices.back() + "/telemetry");
    truth[d].client_id = devices.back();
    if (!o.username_prefix.empty()) {
      truth[d].username = o.username_prefix + devices.back().substr(3);  // <prefix>-NNNNN
    }
  }

  // One client for every device, or one per device.
  std::vector<std::unique_ptr<mqtt::async_client>> clients;
  auto options_for = [&](int d) {
    auto builder = mqtt::connect_options_builder()
                       .clean_session(true)
                       .keep_alive_interval(std::chrono::seconds(30))
                       .max_inflight(o.window);
    if (o.per_device && !truth[d].username.empty()) {
      builder.user_name(truth[d].username);
      if (!o.password.empty()) builder.password(o.password);
    }
    return builder.finalize();
  };
  auto connected = [&](int c) {
    if (o.per_device) {
      truth[c].connected_at = std::chrono::steady_clock::now();
      truth[c].connected_now = true;
      ++truth[c].connections;
    }
  };
  auto connect = [&](int c) {
    clients[c]->connect(options_for(c))->wait();
    connected(c);
  };
  // A QoS 0 message counts as sent once Paho wrote it, but a connection closed right behind it
  // can still lose it. The broker handles a connection's packets in order, so a SUBACK means it
  // has read every PUBLISH before it; the topic has no publisher and no retained message.
  auto wait_until_broker_read_all = [&](int c) {
    if (o.qos != 0) return;  // QoS 1 and 2 messages count only once acknowledged
    try {
      clients[c]
          ->subscribe(topics[o.per_device ? c : 0] + "/barrier", 0)
          ->wait_for(std::chrono::seconds(10));
    } catch (const mqtt::exception&) {
      // A refused subscription (0x80) is a round trip all the same.
    }
  };
  auto disconnect = [&](int c) {
    wait_until_broker_read_all(c);
    clients[c]->disconnect()->wait();
    if (o.per_device && truth[c].connected_now) {
      truth[c].connected += std::chrono::steady_clock::now() - truth[c].connected_at;
      truth[c].connected_now = false;
    }
  };
  const int client_count = o.per_device ? o.devices : 1;
  try {
    for (int c = 0; c < client_count; ++c) {
      clients.push_back(std::make_unique<mqtt::async_client>(
          o.url, o.per_device ? devices[c] : o.client_id, mqtt::create_options(MQTTVERSION_3_1_1)));
    }
    // All at once: one after the other, each connect waits for the previous one's CONNACK.
    std::vector<mqtt::token_ptr> tokens;
    for (int c = 0; c < client_count; ++c) tokens.push_back(clients[c]->connect(options_for(c)));
    for (int c = 0; c < client_count; ++c) {
      tokens[c]->wait();
      connected(c);
    }
  } catch (const std::exception& e) {
    std::cerr << "device-simulator: cannot connect to " << o.url << ": " << e.what() << "\n";
    return 1;
  }

  // Tokens of messages not yet confirmed, oldest first; each carries its device and sizes.
  struct InFlight {
    mqtt::delivery_token_ptr token;
    int device;
    std::size_t payload;
  };
  std::deque<InFlight> in_flight;
  long sent = 0;
  std::uint64_t sent_bytes = 0;
  std::string error;
  auto settle_oldest = [&] {
    auto pending = std::move(in_flight.front());
    in_flight.pop_front();
    try {
      pending.token->wait();
      ++sent;
      sent_bytes += pending.payload;
      auto& t = truth[pending.device];
      ++t.published;
      t.payload += pending.payload;
      t.topic += topics[pending.device].size();
      t.units += Units(pending.payload + topics[pending.device].size());
    } catch (const std::exception& e) {
      if (error.empty()) error = e.what();
    }
  };

  // Per device, the message counts after which it reconnects (evenly spread when --messages is
  // known; every 100 messages otherwise).
  const long per_device_messages = o.messages > 0 ? (o.messages + o.devices - 1) / o.devices : 0;
  const long reconnect_every = o.reconnects == 0 ? 0
                               : per_device_messages > 0
                                   ? std::max(1L, per_device_messages / (o.reconnects + 1))
                                   : 100;
  std::vector<int> reconnects_done(static_cast<std::size_t>(o.devices), 0);

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
    const long seq = published / o.devices;
    const int c = o.per_device ? device : 0;
    if (reconnect_every > 0 && seq > 0 && seq % reconnect_every == 0 &&
        reconnects_done[device] < o.reconnects && reconnects_done[device] < seq / reconnect_every) {
      // Everything this device sent so far is confirmed before it goes away.
      while (!in_flight.empty()) settle_oldest();
      try {
        disconnect(c);
        connect(c);
      } catch (const std::exception& e) {
        error = std::string("reconnecting ") + devices[device] + ": " + e.what();
        break;
      }
      ++reconnects_done[device];
    }
    auto payload = Telemetry(devices[device], seq, rng, o.payload_min, o.payload_max);
    const std::size_t bytes = payload.size();
    const bool retain = o.retain_every > 0 && (seq + 1) % o.retain_every == 0;
    try {
      auto token = clients[c]->publish(topics[device], std::move(payload), o.qos, retain);
      in_flight.push_back({std::move(token), device, bytes});
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
  if (!o.abort_at_end) {
    for (int c = 0; c < client_count; ++c) {
      try {
        disconnect(c);
      } catch (const std::exception&) {
      }
    }
  } else {
    // The process ends without DISCONNECT: the broker sees the connections drop when it exits.
    for (int c = 0; c < client_count; ++c) wait_until_broker_read_all(c);
    const auto end = std::chrono::steady_clock::now();
    for (auto& t : truth) {
      if (t.connected_now) t.connected += end - t.connected_at;
    }
  }
  std::printf(
      "{\"messages\":%ld,\"payload_bytes\":%llu,\"devices\":%d,\"qos\":%d,\"seconds\":%.3f,"
      "\"rate\":%.1f}\n",
      sent, static_cast<unsigned long long>(sent_bytes), o.devices, o.qos, seconds,
      seconds > 0 ? sent / seconds : 0.0);
  if (o.per_device) {
    for (const auto& t : truth) {
      std::printf(
          "{\"device\":\"%s\",\"client_id\":\"%s\",\"username\":\"%s\",\"published\":%ld,"
          "\"payload\":%llu,\"topic\":%llu,\"units\":%llu,\"connected_ms\":%lld,"
          "\"connections\":%d}\n",
          t.client_id.c_str(), t.client_id.c_str(), t.username.c_str(), t.published,
          static_cast<unsigned long long>(t.payload), static_cast<unsigned long long>(t.topic),
          static_cast<unsigned long long>(t.units),
          static_cast<long long>(
              std::chrono::duration_cast<std::chrono::milliseconds>(t.connected).count()),
          t.connections);
    }
  }
  std::fflush(stdout);
  if (!error.empty()) {
    std::cerr << "device-simulator: stopped after an error: " << error << "\n";
    return 1;
  }
  if (o.abort_at_end) std::_Exit(0);  // no destructors: Paho would send DISCONNECT
  return 0;
}
