#include "mqtt_wire.h"

#include <cstring>

namespace billing::exporter::mqtt {
namespace {

constexpr std::size_t kMaxRemainingLength = 268'435'455;  // four length bytes (MQTT 3.1.1, 2.2.3)
constexpr std::size_t kMinCapacity = 128 * 1024;

const char* TypeName(PacketType type) {
  static constexpr const char* kNames[] = {"reserved",  "CONNECT",  "CONNACK",     "PUBLISH",
                                           "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                           "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                           "PINGREQ",   "PINGRESP", "DISCONNECT",  "reserved"};
  return kNames[static_cast<std::uint8_t>(type) & 0x0F];
}

void AppendRemainingLength(std::string& out, std::size_t length) {
  do {
    auto byte = static_cast<std::uint8_t>(length % 128);
    length /= 128;
    if (length > 0) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (length > 0);
}

void AppendU16(std::string& out, std::uint16_t value) {
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value & 0xFF));
}

void AppendString(std::string& out, std::string_view value) {
  if (value.size() > 0xFFFF) throw std::invalid_argument("an MQTT string is at most 65535 bytes");
  AppendU16(out, static_cast<std::uint16_t>(value.size()));
  out.append(value);
}

// Fixed header, then the body.
void AppendPacket(std::string& out, std::uint8_t first_byte, std::string_view body) {
  out.push_back(static_cast<char>(first_byte));
  AppendRemainingLength(out, body.size());
  out.append(body);
}

std::uint16_t ReadU16(std::string_view bytes, std::size_t at) {
  return static_cast<std::uint16_t>((static_cast<std::uint8_t>(bytes[at]) << 8) |
                                    static_cast<std::uint8_t>(bytes[at + 1]));
}

}  // namespace

void AppendConnect(std::string& out, const ConnectOptions& options) {
  std::string body;
  AppendString(body, "MQTT");
  body.push_back(4);  // protocol level: 3.1.1
  std::uint8_t flags = options.clean_session ? 0x02 : 0x00;
  // A password needs the user-name flag (3.1.2.9); an empty user name is allowed.
  const bool has_user = !options.username.empty() || !options.password.empty();
  if (has_user) flags |= 0x80;
  if (!options.password.empty()) flags |= 0x40;
  body.push_back(static_cast<char>(flags));
  AppendU16(body, options.keep_alive_seconds);
  AppendString(body, options.client_id);
  if (has_user) AppendString(body, options.username);
  if (!options.password.empty()) AppendString(body, options.password);
  AppendPacket(out, 0x10, body);
}

void AppendSubscribe(std::string& out, std::uint16_t packet_id,
                     const std::vector<Subscription>& subscriptions) {
  std::string body;
  AppendU16(body, packet_id);
  for (const auto& subscription : subscriptions) {
    AppendString(body, subscription.filter);
    body.push_back(static_cast<char>(subscription.qos));
  }
  AppendPacket(out, 0x82, body);  // SUBSCRIBE's reserved flags are 0010 (3.8.1)
}

void AppendPingreq(std::string& out) { AppendPacket(out, 0xC0, {}); }

void AppendDisconnect(std::string& out) { AppendPacket(out, 0xE0, {}); }

void AppendAck(std::string& out, PacketType type, std::uint16_t packet_id) {
  out.push_back(static_cast<char>(static_cast<std::uint8_t>(type) << 4));
  out.push_back(2);
  AppendU16(out, packet_id);
}

Publish ParsePublish(const Packet& packet) {
  Publish publish;
  publish.qos = (packet.flags >> 1) & 0x03;
  publish.retain = (packet.flags & 0x01) != 0;
  publish.dup = (packet.flags & 0x08) != 0;
  if (publish.qos == 3) throw ProtocolError("PUBLISH with QoS 3");
  const auto& body = packet.body;
  if (body.size() < 2) throw ProtocolError("PUBLISH without a topic");
  const std::size_t topic_size = ReadU16(body, 0);
  std::size_t at = 2 + topic_size;
  if (publish.qos > 0) at += 2;
  if (at > body.size()) throw ProtocolError("PUBLISH shorter than its topic");
  publish.topic = body.substr(2, topic_size);
  if (publish.qos > 0) {
    publish.packet_id = ReadU16(body, 2 + topic_size);
    if (publish.packet_id == 0) throw ProtocolError("PUBLISH with QoS > 0 and packet id 0");
  }
  publish.payload_size = packet.body_size - at;
  if (packet.body_size == body.size()) publish.payload = body.substr(at);
  return publish;
}

Connack ParseConnack(const Packet& packet) {
  if (packet.body.size() != 2) throw ProtocolError("CONNACK of the wrong length");
  return {(static_cast<std::uint8_t>(packet.body[0]) & 0x01) != 0,
          static_cast<std::uint8_t>(packet.body[1])};
}

Suback ParseSuback(const Packet& packet) {
  if (packet.body.size() < 3) throw ProtocolError("SUBACK without return codes");
  Suback suback{ReadU16(packet.body, 0), {}};
  for (std::size_t i = 2; i < packet.body.size(); ++i) {
    suback.granted_qos.push_back(static_cast<std::uint8_t>(packet.body[i]));
  }
  return suback;
}

std::uint16_t ParsePacketId(const Packet& packet) {
  if (packet.body.size() != 2) {
    throw ProtocolError(std::string(TypeName(packet.type)) + " of the wrong length");
  }
  return ReadU16(packet.body, 0);
}

std::string ConnackReason(int code) {
  static constexpr const char* kReasons[] = {
      "accepted",           "unacceptable protocol version", "client id rejected",
      "server unavailable", "bad user name or password",     "not authorized"};
  std::string reason = "return code " + std::to_string(code);
  if (code > 0 && code < 6) reason += std::string(" (") + kReasons[code] + ")";
  return reason;
}

PacketReader::PacketReader(std::size_t capacity)
    : buffer_(std::make_unique_for_overwrite<char[]>(std::max(capacity, kMinCapacity))),
      capacity_(std::max(capacity, kMinCapacity)) {}

std::span<char> PacketReader::Space() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (begin_ > 0) {
    // Only the start of one packet is left: moving it is cheaper than a ring buffer's bookkeeping.
    std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  return {buffer_.get() + end_, capacity_ - end_};
}

void PacketReader::Commit(std::size_t bytes) {
  end_ += bytes;
  const std::size_t skipped = std::min(skip_remaining_, end_ - begin_);
  begin_ += skipped;
  skip_remaining_ -= skipped;
}

std::optional<Packet> PacketReader::Next() {
  const std::size_t available = end_ - begin_;
  if (available < 2) return std::nullopt;
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer_.get() + begin_);
  std::size_t remaining = 0;
  std::size_t header = 1;
  for (int shift = 0;; shift += 7) {
    if (header > 4) throw ProtocolError("a packet length longer than four bytes");
    if (header >= available) return std::nullopt;
    const std::uint8_t byte = data[header++];
    remaining |= static_cast<std::size_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) break;
  }
  if (remaining > kMaxRemainingLength) throw ProtocolError("a packet length out of range");
  Packet packet;
  packet.type = static_cast<PacketType>(data[0] >> 4);
  packet.flags = data[0] & 0x0F;
  packet.body_size = remaining;
  const std::size_t total = header + remaining;
  const char* body = buffer_.get() + begin_ + header;
  if (available >= total) {
    packet.body = std::string_view(body, remaining);
    begin_ += total;
    return packet;
  }
  if (total <= capacity_) return std::nullopt;  // fits once the rest arrives
  if (packet.type != PacketType::kPublish) {
    throw ProtocolError(std::string("a ") + TypeName(packet.type) + " of " +
                        std::to_string(remaining) + " bytes, more than the " +
                        std::to_string(capacity_) + "-byte read buffer");
  }
  // An oversized PUBLISH: hand it out once the buffer is full of it (its headers fit, see the
  // constructor), then discard the rest of its payload as it arrives.
  if (begin_ != 0 || end_ != capacity_) return std::nullopt;
  packet.body = std::string_view(body, available - header);
  skip_remaining_ = total - available;
  begin_ = end_;
  return packet;
}

void PacketReader::Reset() { begin_ = end_ = skip_remaining_ = 0; }

}  // namespace billing::exporter::mqtt
