// Pure half of the MQTT collector's client: the MQTT 3.1.1 packets a subscriber sends, and a
// reader that splits the broker's byte stream into packets in place. It works on a buffer that one
// read() fills with as many messages as have arrived, so the cost per message is parsing, not a
// system call. No I/O here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace billing::exporter::mqtt {

enum class PacketType : std::uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

/// The broker sent something MQTT 3.1.1 does not allow; the connection cannot continue.
struct ProtocolError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ConnectOptions {
  std::string client_id;
  bool clean_session = true;
  std::uint16_t keep_alive_seconds = 20;
  std::string username;  // empty: none
  std::string password;  // empty: none
};

struct Subscription {
  std::string filter;
  int qos = 0;
};

// Each appends one encoded packet to `out`.
void AppendConnect(std::string& out, const ConnectOptions& options);
void AppendSubscribe(std::string& out, std::uint16_t packet_id,
                     const std::vector<Subscription>& subscriptions);
void AppendPingreq(std::string& out);
void AppendDisconnect(std::string& out);
/// PUBACK, PUBREC or PUBCOMP: the replies a subscriber owes for QoS 1 and 2 deliveries.
void AppendAck(std::string& out, PacketType type, std::uint16_t packet_id);

/// One packet as it lies in the reader's buffer; valid until the reader's next Space()/Commit().
struct Packet {
  PacketType type{};
  std::uint8_t flags = 0;  // the low nibble of the fixed header
  std::string_view body;   // the variable header and payload
  /// The body's full length. Larger than body.size() only for a PUBLISH too large for the buffer:
  /// body then holds its first bytes (topic and packet id included) and the reader skips the rest.
  std::size_t body_size = 0;
};

struct Publish {
  std::string_view topic;
  std::string_view payload;  // empty when the packet was too large to hold (see payload_size)
  std::size_t payload_size = 0;
  int qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;  // 0 for QoS 0
  bool payload_complete() const { return payload.size() == payload_size; }
};

/// Throws ProtocolError when the packet is not a well-formed PUBLISH.
Publish ParsePublish(const Packet& packet);

struct Connack {
  bool session_present = false;  // the broker kept the session of an earlier connection
  int return_code = 0;           // 0: accepted
};
/// Throws ProtocolError on a malformed packet.
Connack ParseConnack(const Packet& packet);

struct Suback {
  std::uint16_t packet_id = 0;
  std::vector<int> granted_qos;  // one per filter, 0x80 for a refused one
};
Suback ParseSuback(const Packet& packet);

/// The packet id of a PUBREL (or any other acknowledgement).
std::uint16_t ParsePacketId(const Packet& packet);

/// Why the broker refused a CONNECT, from its CONNACK return code (MQTT 3.1.1, 3.2.2.3).
std::string ConnackReason(int code);

/// Splits a byte stream into packets without copying them. Usage: read into Space(), Commit() what
/// was read, then take Next() until it returns nullopt. The buffer never grows: a PUBLISH larger
/// than it is still counted (topic and size), and its payload is skipped as it arrives.
class PacketReader {
 public:
  /// `capacity` must hold the largest header of a PUBLISH (a 65,535-byte topic): at least 128 KiB.
  explicit PacketReader(std::size_t capacity = 256 * 1024);

  /// Free space after the buffered bytes, for the next read. Moves a partial packet to the front.
  std::span<char> Space();
  void Commit(std::size_t bytes);
  /// The next packet, or nullopt until more bytes arrive. Throws ProtocolError on malformed data.
  std::optional<Packet> Next();
  /// Forgets everything buffered: for a new connection.
  void Reset();
  std::size_t capacity() const { return capacity_; }

 private:
  // Not value-initialised: only the pages reads have filled become resident, so a large buffer
  // (plugin mode's 16 MiB) costs what the biggest message actually needed.
  std::unique_ptr<char[]> buffer_;
  std::size_t capacity_;
  std::size_t begin_ = 0;           // first unparsed byte
  std::size_t end_ = 0;             // one past the last buffered byte
  std::size_t skip_remaining_ = 0;  // bytes of an oversized PUBLISH still to discard
};

}  // namespace billing::exporter::mqtt
