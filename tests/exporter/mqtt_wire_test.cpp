// The exporter's MQTT 3.1.1 wire format: the bytes it sends (checked against the specification's
// layout by hand) and the reader that splits the broker's stream, whatever the read boundaries.
#include "mqtt_wire.h"

#include <gtest/gtest.h>

#include <string>

namespace billing::exporter::mqtt {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

// A PUBLISH as a broker sends it (the exporter itself never publishes).
std::string EncodePublish(std::string_view topic, std::string_view payload, int qos = 0,
                          std::uint16_t id = 0, bool retain = false) {
  std::string body;
  body.push_back(static_cast<char>(topic.size() >> 8));
  body.push_back(static_cast<char>(topic.size() & 0xFF));
  body.append(topic);
  if (qos > 0) {
    body.push_back(static_cast<char>(id >> 8));
    body.push_back(static_cast<char>(id & 0xFF));
  }
  body.append(payload);
  std::string out(1, static_cast<char>(0x30 | (qos << 1) | (retain ? 1 : 0)));
  std::size_t length = body.size();
  do {
    auto byte = static_cast<char>(length % 128);
    length /= 128;
    if (length > 0) byte = static_cast<char>(byte | 0x80);
    out.push_back(byte);
  } while (length > 0);
  return out + body;
}

// Feeds `stream` to `reader` in pieces of `chunk` bytes and parses every packet that completes.
std::vector<Publish> ReadAll(PacketReader& reader, const std::string& stream, std::size_t chunk,
                             std::vector<std::string>* topics = nullptr) {
  std::vector<Publish> found;
  std::size_t at = 0;
  while (at < stream.size()) {
    auto space = reader.Space();
    const std::size_t n = std::min({chunk, space.size(), stream.size() - at});
    std::copy_n(stream.data() + at, n, space.data());
    at += n;
    reader.Commit(n);
    while (auto packet = reader.Next()) {
      EXPECT_EQ(packet->type, PacketType::kPublish);
      auto publish = ParsePublish(*packet);
      if (topics) topics->emplace_back(publish.topic);
      publish.topic = {};  // the view dies with the next read
      publish.payload = {};
      found.push_back(publish);
    }
  }
  return found;
}

TEST(MqttWireTest, ConnectMatchesTheSpecificationLayout) {
  std::string out;
  AppendConnect(out, {"c", true, 20, "", ""});
  EXPECT_EQ(out, Bytes({0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 20, 0, 1, 'c'}));

  out.clear();
  AppendConnect(out, {"id", false, 60, "u", "pw"});
  EXPECT_EQ(out, Bytes({0x10, 21, 0,   4,   'M', 'Q', 'T', 'T', 4, 0xC0, 0,  60,
                        0,    2,  'i', 'd', 0,   1,   'u', 0,   2, 'p',  'w'}));

  // A password without a user name still sets the user-name flag (3.1.2.9), with an empty name.
  out.clear();
  AppendConnect(out, {"c", true, 20, "", "pw"});
  EXPECT_EQ(static_cast<std::uint8_t>(out[9]), 0xC2);
}

TEST(MqttWireTest, SubscribeAcksAndPings) {
  std::string out;
  AppendSubscribe(out, 1, {{"#", 1}, {"$SYS/broker/#", 0}});
  EXPECT_EQ(out, Bytes({0x82, 22,  0,   1,   0,   1,   '#', 1,   0,   13,  '$', 'S',
                        'Y',  'S', '/', 'b', 'r', 'o', 'k', 'e', 'r', '/', '#', 0}));
  out.clear();
  AppendAck(out, PacketType::kPuback, 0x1234);
  AppendAck(out, PacketType::kPubrec, 7);
  AppendAck(out, PacketType::kPubcomp, 7);
  AppendPingreq(out);
  AppendDisconnect(out);
  EXPECT_EQ(out, Bytes({0x40, 2, 0x12, 0x34, 0x50, 2, 0, 7, 0x70, 2, 0, 7, 0xC0, 0, 0xE0, 0}));

  // A body of 321 bytes takes two length bytes: 321 = 65 + 2 * 128.
  out.clear();
  AppendSubscribe(out, 1, {{std::string(316, 'a'), 0}});
  EXPECT_EQ(static_cast<std::uint8_t>(out[1]), 0xC1);
  EXPECT_EQ(static_cast<std::uint8_t>(out[2]), 0x02);
  EXPECT_EQ(out.size(), 3u + 321u);
}

TEST(MqttWireTest, PacketsAreFoundWhateverTheReadBoundaries) {
  std::string stream;
  for (int i = 0; i < 50; ++i) {
    stream += EncodePublish("devices/d" + std::to_string(i) + "/telemetry",
                            std::string(static_cast<std::size_t>(i * 7), 'x'), i % 3,
                            static_cast<std::uint16_t>(i + 1), i == 0);
  }
  for (std::size_t chunk : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7},
                            std::size_t{100}, stream.size()}) {
    PacketReader reader;
    std::vector<std::string> topics;
    const auto found = ReadAll(reader, stream, chunk, &topics);
    ASSERT_EQ(found.size(), 50u) << "chunk " << chunk;
    for (int i = 0; i < 50; ++i) {
      EXPECT_EQ(topics[i], "devices/d" + std::to_string(i) + "/telemetry");
      EXPECT_EQ(found[i].payload_size, static_cast<std::size_t>(i * 7));
      EXPECT_EQ(found[i].qos, i % 3);
      EXPECT_EQ(found[i].packet_id, i % 3 == 0 ? 0 : i + 1);
      EXPECT_EQ(found[i].retain, i == 0);
    }
  }
}

TEST(MqttWireTest, PayloadIsViewedInPlace) {
  PacketReader reader;
  const std::string stream = EncodePublish("$SYS/broker/uptime", "42 seconds", 0, 0, true);
  auto space = reader.Space();
  std::copy(stream.begin(), stream.end(), space.begin());
  reader.Commit(stream.size());
  const auto packet = reader.Next();
  ASSERT_TRUE(packet);
  const auto publish = ParsePublish(*packet);
  EXPECT_EQ(publish.topic, "$SYS/broker/uptime");
  EXPECT_EQ(publish.payload, "42 seconds");
  EXPECT_TRUE(publish.payload_complete());
  EXPECT_TRUE(publish.retain);
  EXPECT_FALSE(reader.Next());
}

// A PUBLISH larger than the buffer is still counted with its full size, and the stream goes on.
TEST(MqttWireTest, OversizedPublishIsCountedAndSkipped) {
  const std::string big(1'000'000, 'p');
  const std::string stream = EncodePublish("a/b", "small") +
                             EncodePublish("firmware/image", big, 1, 9) +
                             EncodePublish("c/d", "after");
  for (std::size_t chunk : {std::size_t{4096}, std::size_t{100'000}, stream.size()}) {
    PacketReader reader(128 * 1024);
    std::vector<std::string> topics;
    const auto found = ReadAll(reader, stream, chunk, &topics);
    ASSERT_EQ(found.size(), 3u) << "chunk " << chunk;
    EXPECT_EQ(topics, (std::vector<std::string>{"a/b", "firmware/image", "c/d"}));
    EXPECT_EQ(found[1].payload_size, big.size());
    EXPECT_EQ(found[1].packet_id, 9);  // so that it is acknowledged
    EXPECT_EQ(found[2].payload_size, 5u);
  }
}

TEST(MqttWireTest, MalformedStreamsAreProtocolErrors) {
  auto first_packet_of = [](const std::string& stream) {
    PacketReader reader;
    auto space = reader.Space();
    std::copy(stream.begin(), stream.end(), space.begin());
    reader.Commit(stream.size());
    auto packet = reader.Next();
    if (packet && packet->type == PacketType::kPublish) ParsePublish(*packet);
    return packet;
  };
  // Five length bytes.
  EXPECT_THROW(first_packet_of(Bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})), ProtocolError);
  // QoS 3.
  EXPECT_THROW(first_packet_of(Bytes({0x36, 4, 0, 1, 'a', 0})), ProtocolError);
  // A topic longer than the packet.
  EXPECT_THROW(first_packet_of(Bytes({0x30, 3, 0, 9, 'a'})), ProtocolError);
  // QoS 1 without a packet id.
  EXPECT_THROW(first_packet_of(Bytes({0x32, 3, 0, 1, 'a'})), ProtocolError);
  // Anything but a PUBLISH larger than the buffer cannot be skipped.
  EXPECT_THROW(first_packet_of(Bytes({0x90, 0xFF, 0xFF, 0x7F})), ProtocolError);
  // An incomplete packet is not an error: it waits for the rest.
  EXPECT_FALSE(first_packet_of(Bytes({0x30, 10, 0, 1})));
}

TEST(MqttWireTest, ConnackAndSuback) {
  PacketReader reader;
  const std::string stream = Bytes({0x20, 2, 1, 5, 0x90, 5, 0, 1, 0, 0x80, 1});
  auto space = reader.Space();
  std::copy(stream.begin(), stream.end(), space.begin());
  reader.Commit(stream.size());
  const auto connack = reader.Next();
  ASSERT_TRUE(connack);
  EXPECT_EQ(connack->type, PacketType::kConnack);
  EXPECT_EQ(ParseConnack(*connack).return_code, 5);
  EXPECT_TRUE(ParseConnack(*connack).session_present);
  EXPECT_EQ(ConnackReason(5), "return code 5 (not authorized)");
  const auto suback = reader.Next();
  ASSERT_TRUE(suback);
  const auto parsed = ParseSuback(*suback);
  EXPECT_EQ(parsed.packet_id, 1);
  EXPECT_EQ(parsed.granted_qos, (std::vector<int>{0, 0x80, 1}));
}

}  // namespace
}  // namespace billing::exporter::mqtt
