// What the broker plugin measures and sends out of the broker: one snapshot of every count since
// the broker started, with a compact, versioned binary encoding. Pure: no I/O, no broker headers,
// so the exporter (which decodes it) and the fuzz target link it without Mosquitto.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace billing::plugin {

/// Metering units of one PUBLISH: payload + topic bytes in 5,120-byte steps, at least 1.
constexpr std::uint64_t MessageUnits(std::uint64_t payload_and_topic_bytes) {
  constexpr std::uint64_t kUnitBytes = 5120;
  return payload_and_topic_bytes == 0 ? 1 : (payload_and_topic_bytes + kUnitBytes - 1) / kUnitBytes;
}

struct Usage {
  std::uint64_t messages = 0;       // PUBLISH packets received, retained ones included
  std::uint64_t payload_bytes = 0;  // their payloads
  std::uint64_t topic_bytes = 0;    // their topic names
  std::uint64_t units = 0;          // sum of MessageUnits(payload + topic) per PUBLISH
  std::uint64_t connection_ms = 0;  // connected time, open connections up to the snapshot
  bool operator==(const Usage&) const = default;
  Usage& operator+=(const Usage& other) {
    messages += other.messages;
    payload_bytes += other.payload_bytes;
    topic_bytes += other.topic_bytes;
    units += other.units;
    connection_ms += other.connection_ms;
    return *this;
  }
};

struct ClientUsage {
  std::string client_id;
  std::string username;
  bool has_username = false;
  bool other = false;  // the overflow record: every client beyond the plugin's cap
  std::uint64_t connections_open = 0;
  Usage usage;
  bool operator==(const ClientUsage&) const = default;
};

struct GroupUsage {
  std::string group;   // the first N levels of the topic
  bool other = false;  // the overflow record: every group beyond the cap
  Usage usage;         // connection_ms is always 0
  bool operator==(const GroupUsage&) const = default;
};

struct Snapshot {
  std::uint64_t broker_start_unix_s = 0;  // when the plugin (so the broker) started: counts reset
  std::uint64_t taken_unix_ms = 0;
  std::uint64_t sequence = 0;  // 1, 2, ... within one broker lifetime
  std::uint64_t interval_ms = 0;
  Usage total;  // every client, the overflow record and unattributed publishes included
  std::uint64_t connections_open = 0;
  std::vector<ClientUsage> clients;
  std::vector<GroupUsage> groups;
  bool operator==(const Snapshot&) const = default;
};

inline constexpr std::uint8_t kSnapshotVersion = 1;
/// Longest client id, user name or group the encoding carries (MQTT's own limit).
inline constexpr std::size_t kMaxStringBytes = 65535;

/// Appends the encoding of `snapshot` to `out`: "IBS", a version byte, then LEB128 varints and
/// length-prefixed strings. Strings longer than kMaxStringBytes are not representable; the meter
/// never produces them.
void EncodeSnapshot(const Snapshot& snapshot, std::string& out);

struct DecodeResult {
  std::optional<Snapshot> snapshot;
  std::string error;  // when snapshot is empty: what is wrong, with the byte offset
};
/// Decodes one payload. Never throws on bad input and never allocates more than the input can
/// justify (a count larger than the bytes left is rejected before anything is reserved).
DecodeResult DecodeSnapshot(std::string_view payload);

}  // namespace billing::plugin
