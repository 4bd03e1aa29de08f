// The MQTT packet reader on the broker's byte stream. The first two input bytes choose how the
// rest is cut into reads (every split a TCP stream can produce, down to one byte); the rest is
// the stream. Properties:
//  - the packets are the ones an independent, whole-stream walk of the fixed headers finds, in
//    order, however the stream is cut, and the reader fails exactly where that walk does;
//  - a packet re-encoded (and a PUBLISH rebuilt from its parsed fields) parses to the same;
//  - the messages counted never exceed the PUBLISH packets in the input.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "mqtt_wire.h"
#include "usage_ledger.h"

namespace mqtt = billing::exporter::mqtt;

namespace {

constexpr std::size_t kCapacity = 128 * 1024;

struct RawPacket {
  std::uint8_t first_byte;
  std::string body;
};

struct Walk {
  std::vector<RawPacket> packets;
  bool error = false;
};

// Reference: MQTT 3.1.1 section 2.2 read directly, without the reader's buffer management.
Walk WalkStream(std::string_view stream) {
  Walk walk;
  std::size_t at = 0;
  while (stream.size() - at >= 2) {
    std::size_t length = 0;
    std::size_t header = 1;
    std::size_t multiplier = 1;
    for (;;) {
      // At most four length bytes: a fifth is an error as soon as it is due (2.2.3).
      if (header > 4) {
        walk.error = true;
        return walk;
      }
      if (at + header >= stream.size()) return walk;  // the length is not complete yet
      const auto byte = static_cast<std::uint8_t>(stream[at + header++]);
      length += (byte & 0x7Fu) * multiplier;
      multiplier *= 128;
      if ((byte & 0x80u) == 0) break;
    }
    const auto first = static_cast<std::uint8_t>(stream[at]);
    const bool publish = (first >> 4) == static_cast<unsigned>(mqtt::PacketType::kPublish);
    if (header + length > kCapacity && !publish) {
      walk.error = true;  // can never fit the reader's buffer
      return walk;
    }
    if (stream.size() - at < header + length) return walk;  // incomplete
    walk.packets.push_back({first, std::string(stream.substr(at + header, length))});
    at += header + length;
  }
  return walk;
}

std::string Encode(std::uint8_t first_byte, std::string_view body) {
  std::string out(1, static_cast<char>(first_byte));
  std::size_t length = body.size();
  do {
    std::uint8_t byte = length % 128;
    length /= 128;
    if (length > 0) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (length > 0);
  out.append(body);
  return out;
}

std::optional<RawPacket> ReadOne(mqtt::PacketReader& reader, std::string_view bytes) {
  reader.Reset();
  auto space = reader.Space();
  FUZZ_CHECK(space.size() >= bytes.size(), "a small packet fits the buffer");
  std::memcpy(space.data(), bytes.data(), bytes.size());
  reader.Commit(bytes.size());
  auto packet = reader.Next();
  if (!packet) return std::nullopt;
  return RawPacket{
      static_cast<std::uint8_t>(static_cast<std::uint8_t>(packet->type) << 4 | packet->flags),
      std::string(packet->body)};
}

void CheckPublishRoundTrip(mqtt::PacketReader& reader, const mqtt::Publish& publish) {
  std::string body;
  body.push_back(static_cast<char>(publish.topic.size() >> 8));
  body.push_back(static_cast<char>(publish.topic.size() & 0xFF));
  body.append(publish.topic);
  if (publish.qos > 0) {
    body.push_back(static_cast<char>(publish.packet_id >> 8));
    body.push_back(static_cast<char>(publish.packet_id & 0xFF));
  }
  body.append(publish.payload);
  const auto first = static_cast<std::uint8_t>(0x30 | (publish.dup ? 0x08 : 0) |
                                               (publish.qos << 1) | (publish.retain ? 1 : 0));
  const auto again = ReadOne(reader, Encode(first, body));
  FUZZ_CHECK(again.has_value(), "a rebuilt PUBLISH is read back");
  mqtt::Packet packet{mqtt::PacketType::kPublish,
                      static_cast<std::uint8_t>(again->first_byte & 0x0F), again->body,
                      again->body.size()};
  const auto reparsed = mqtt::ParsePublish(packet);
  FUZZ_CHECK(reparsed.topic == publish.topic, "topic survives re-encoding");
  FUZZ_CHECK(reparsed.payload == publish.payload, "payload survives re-encoding");
  FUZZ_CHECK(reparsed.qos == publish.qos && reparsed.retain == publish.retain &&
                 reparsed.dup == publish.dup && reparsed.packet_id == publish.packet_id,
             "flags and packet id survive re-encoding");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::uint32_t split_state = (static_cast<std::uint32_t>(data[0]) << 8 | data[1]) + 1;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  const Walk expected = WalkStream(stream);

  static mqtt::PacketReader reader(kCapacity);
  static mqtt::PacketReader scratch(kCapacity);
  reader.Reset();
  billing::exporter::UsageLedger ledger({}, 1, 100);
  std::vector<RawPacket> seen;
  std::size_t publishes_parsed = 0;
  bool error = false;
  std::size_t at = 0;
  while (at < stream.size() && !error) {
    // A small xorshift: reads of 1 to 64 bytes, the pattern fixed by the first two bytes.
    split_state ^= split_state << 13;
    split_state ^= split_state >> 17;
    split_state ^= split_state << 5;
    const std::size_t chunk = std::min<std::size_t>(1 + split_state % 64, stream.size() - at);
    auto space = reader.Space();
    FUZZ_CHECK(space.size() >= chunk, "the reader always has room for a small read");
    std::memcpy(space.data(), stream.data() + at, chunk);
    reader.Commit(chunk);
    at += chunk;
    try {
      while (auto packet = reader.Next()) {
        FUZZ_CHECK(packet->body.size() == packet->body_size, "small packets are held whole");
        const auto first =
            static_cast<std::uint8_t>(static_cast<std::uint8_t>(packet->type) << 4 | packet->flags);
        seen.push_back({first, std::string(packet->body)});
        if (packet->type == mqtt::PacketType::kPublish) {
          try {
            const auto publish = mqtt::ParsePublish(*packet);
            FUZZ_CHECK(publish.payload_complete(), "small payloads are complete");
            ledger.Count(publish.topic, publish.payload_size);
            ++publishes_parsed;
            CheckPublishRoundTrip(scratch, publish);
          } catch (const mqtt::ProtocolError&) {
          }
        } else {
          try {
            switch (packet->type) {
              case mqtt::PacketType::kConnack:
                mqtt::ParseConnack(*packet);
                break;
              case mqtt::PacketType::kSuback:
                mqtt::ParseSuback(*packet);
                break;
              default:
                mqtt::ParsePacketId(*packet);
            }
          } catch (const mqtt::ProtocolError&) {
          }
        }
      }
    } catch (const mqtt::ProtocolError&) {
      error = true;
    }
  }

  FUZZ_CHECK(error == expected.error, "the reader fails exactly where the stream is malformed");
  FUZZ_CHECK(seen.size() == expected.packets.size(), "as many packets as the stream holds");
  std::size_t publish_packets = 0;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    FUZZ_CHECK(seen[i].first_byte == expected.packets[i].first_byte, "same packet type and flags");
    FUZZ_CHECK(seen[i].body == expected.packets[i].body, "same packet body");
    if ((seen[i].first_byte >> 4) == 3) ++publish_packets;
    const auto again = ReadOne(scratch, Encode(seen[i].first_byte, seen[i].body));
    FUZZ_CHECK(again && again->first_byte == seen[i].first_byte && again->body == seen[i].body,
               "a re-encoded packet parses to the same packet");
  }
  std::uint64_t counted = 0;
  for (const auto& group : ledger.Snapshot()) counted += group.messages;
  FUZZ_CHECK(counted == publishes_parsed, "every parsed PUBLISH is counted once");
  FUZZ_CHECK(counted <= publish_packets, "never more messages counted than PUBLISH packets sent");
  return 0;
}
