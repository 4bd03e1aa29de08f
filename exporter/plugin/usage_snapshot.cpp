#include "usage_snapshot.h"

#include <stdexcept>

namespace billing::plugin {
namespace {

constexpr std::string_view kMagic = "IBS";
constexpr std::uint8_t kFlagOther = 1;
constexpr std::uint8_t kFlagHasUsername = 2;

void PutVarint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void PutString(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out.append(s);
}

void PutUsage(std::string& out, const Usage& u, bool with_connection) {
  PutVarint(out, u.messages);
  PutVarint(out, u.payload_bytes);
  PutVarint(out, u.topic_bytes);
  PutVarint(out, u.units);
  if (with_connection) PutVarint(out, u.connection_ms);
}

struct Malformed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::size_t offset() const { return at_; }
  std::size_t left() const { return in_.size() - at_; }

  std::uint8_t Byte(const char* what) {
    if (left() < 1) Fail(std::string("truncated before ") + what);
    return static_cast<std::uint8_t>(in_[at_++]);
  }
  std::uint64_t Varint(const char* what) {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const std::uint8_t b = Byte(what);
      // The tenth byte may only carry the top bit of a 64-bit value.
      if (shift == 63 && b > 1) Fail(std::string(what) + " does not fit 64 bits");
      value |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return value;
    }
    Fail(std::string(what) + " does not fit 64 bits");
  }
  std::string String(const char* what) {
    const std::uint64_t size = Varint(what);
    if (size > kMaxStringBytes) Fail(std::string(what) + " longer than 65535 bytes");
    if (size > left()) Fail(std::string("truncated inside ") + what);
    std::string s(in_.substr(at_, size));
    at_ += size;
    return s;
  }
  // A record count, checked against the bytes left (each record takes at least `min_bytes`).
  std::size_t Count(const char* what, std::size_t min_bytes) {
    const std::uint64_t n = Varint(what);
    if (n > left() / min_bytes) Fail(std::string(what) + " larger than the payload can hold");
    return static_cast<std::size_t>(n);
  }
  Usage ReadUsage(bool with_connection) {
    Usage u;
    u.messages = Varint("messages");
    u.payload_bytes = Varint("payload bytes");
    u.topic_bytes = Varint("topic bytes");
    u.units = Varint("units");
    if (with_connection) u.connection_ms = Varint("connection time");
    return u;
  }
  [[noreturn]] void Fail(const std::string& what) const {
    throw Malformed(what + " at byte " + std::to_string(at_));
  }

 private:
  std::string_view in_;
  std::size_t at_ = 0;
};

}  // namespace

void EncodeSnapshot(const Snapshot& s, std::string& out) {
  out.append(kMagic);
  out.push_back(static_cast<char>(kSnapshotVersion));
  PutVarint(out, s.broker_start_unix_s);
  PutVarint(out, s.taken_unix_ms);
  PutVarint(out, s.sequence);
  PutVarint(out, s.interval_ms);
  PutUsage(out, s.total, true);
  PutVarint(out, s.connections_open);
  PutVarint(out, s.clients.size());
  for (const auto& c : s.clients) {
    out.push_back(
        static_cast<char>((c.other ? kFlagOther : 0) | (c.has_username ? kFlagHasUsername : 0)));
    PutString(out, c.client_id);
    if (c.has_username) PutString(out, c.username);
    PutVarint(out, c.connections_open);
    PutUsage(out, c.usage, true);
  }
  PutVarint(out, s.groups.size());
  for (const auto& g : s.groups) {
    out.push_back(static_cast<char>(g.other ? kFlagOther : 0));
    PutString(out, g.group);
    PutUsage(out, g.usage, false);
  }
}

DecodeResult DecodeSnapshot(std::string_view payload) {
  DecodeResult result;
  try {
    Reader r(payload);
    if (payload.substr(0, kMagic.size()) != kMagic) r.Fail("not a usage snapshot (no IBS magic)");
    for (std::size_t i = 0; i < kMagic.size(); ++i) r.Byte("magic");
    const std::uint8_t version = r.Byte("the version");
    if (version != kSnapshotVersion) {
      r.Fail("snapshot version " + std::to_string(version) + " (this exporter reads version " +
             std::to_string(kSnapshotVersion) + "; upgrade the exporter)");
    }
    Snapshot s;
    s.broker_start_unix_s = r.Varint("the start time");
    s.taken_unix_ms = r.Varint("the snapshot time");
    s.sequence = r.Varint("the sequence");
    s.interval_ms = r.Varint("the interval");
    s.total = r.ReadUsage(true);
    s.connections_open = r.Varint("open connections");
    // A client record is at least 1 flag + 1 length + 6 varints; a group 1 + 1 + 4.
    const std::size_t clients = r.Count("the client count", 8);
    s.clients.reserve(clients);
    for (std::size_t i = 0; i < clients; ++i) {
      ClientUsage c;
      const std::uint8_t flags = r.Byte("client flags");
      if ((flags & ~(kFlagOther | kFlagHasUsername)) != 0) r.Fail("unknown client flags");
      c.other = (flags & kFlagOther) != 0;
      c.has_username = (flags & kFlagHasUsername) != 0;
      c.client_id = r.String("a client id");
      if (c.has_username) c.username = r.String("a user name");
      c.connections_open = r.Varint("open connections");
      c.usage = r.ReadUsage(true);
      s.clients.push_back(std::move(c));
    }
    const std::size_t groups = r.Count("the group count", 6);
    s.groups.reserve(groups);
    for (std::size_t i = 0; i < groups; ++i) {
      GroupUsage g;
      const std::uint8_t flags = r.Byte("group flags");
      if ((flags & ~kFlagOther) != 0) r.Fail("unknown group flags");
      g.other = (flags & kFlagOther) != 0;
      g.group = r.String("a topic group");
      g.usage = r.ReadUsage(false);
      s.groups.push_back(std::move(g));
    }
    if (r.left() != 0) r.Fail(std::to_string(r.left()) + " trailing bytes");
    result.snapshot = std::move(s);
  } catch (const Malformed& e) {
    result.error = e.what();
  }
  return result;
}

}  // namespace billing::plugin
