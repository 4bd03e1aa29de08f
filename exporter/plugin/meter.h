// The broker plugin's counting logic, apart from the broker: connections come and go, PUBLISH
// packets are counted per client (client id and user name) and per topic group, and a Snapshot
// reads it all. Mosquitto calls a plugin from its one main thread, so the meter has one thread and
// needs no lock at all. Publish() is the hot path: it allocates nothing once the connection has
// its client record and its topic group exists (both are created at most once, within the caps).
//
// A connection earns a client record (one of max_clients) by publishing or by staying connected
// for kRecordAfterMs; one that ends sooner without publishing adds its time to the "other" record.
// Mosquitto 2.0 tells a plugin about a CONNECT before the password file decides, so without this a
// stream of refused CONNECTs with fresh client ids (closed by the broker at once) would take every
// record and leave the tenant's real devices unattributed. Totals are exact either way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "usage_snapshot.h"

namespace billing::plugin {

struct MeterLimits {
  std::size_t max_clients = 10000;  // beyond: the "other" client record
  std::size_t topic_group_levels = 1;
  std::size_t max_topic_groups = 100;  // beyond: the "other" group
  // Clients that are not the tenant's (the exporter's own connection): neither their connection
  // time nor their publishes are metered.
  std::vector<std::string> unmetered_client_ids;
};

class Meter {
 public:
  /// Identifies one connection (the broker's client pointer); only compared, never followed.
  using Connection = const void*;

  explicit Meter(MeterLimits limits);
  Meter(const Meter&) = delete;
  Meter& operator=(const Meter&) = delete;

  /// Connections that neither publish nor last this long are counted in the "other" record.
  static constexpr std::int64_t kRecordAfterMs = 1000;

  /// A client connected (authenticated) at `now_ms` (a monotonic clock). Connecting the same
  /// connection again (a second authentication) keeps its first start. A client that already has
  /// a record uses it at once; a new one gets its record when it earns it (see above).
  void Connect(Connection connection, std::string_view client_id,
               std::optional<std::string_view> username, std::int64_t now_ms);
  /// The connection ended, cleanly or not. Unknown connections (never authenticated) are ignored.
  void Disconnect(Connection connection, std::int64_t now_ms);
  /// Counts one PUBLISH received from `connection` (retained or not). Returns false, counting
  /// nothing, for a connection the meter never saw connect (the broker skips authentication for
  /// some listeners): the caller then connects it and publishes again, so nothing is missed.
  bool Publish(Connection connection, std::string_view topic, std::uint64_t payload_bytes);

  /// Everything counted so far; open connections count up to `now_ms`, but one still without a
  /// record (younger than kRecordAfterMs, no PUBLISH yet) only once it has one or ends, so that no
  /// count ever moves from "other" to a client. Gives a record to every connection that earned
  /// one. The caller fills in the broker's start time, the snapshot time and the sequence.
  Snapshot Take(std::int64_t now_ms);

  std::size_t open_connections() const { return connections_.size(); }

 private:
  struct ClientSlot {
    ClientUsage record;  // connection_ms: closed connections only
  };
  struct GroupSlot {
    GroupUsage record;
  };
  static constexpr std::size_t kUnmetered = SIZE_MAX;
  static constexpr std::size_t kNoRecordYet = SIZE_MAX - 1;
  struct Open {
    std::size_t client;  // index into clients_, kUnmetered, or kNoRecordYet
    std::int64_t since_ms;
    // Until the connection has its record: who it is.
    std::string client_id;
    std::optional<std::string> username;
  };
  struct TransparentHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Index = std::unordered_map<std::string, std::size_t, TransparentHash, std::equal_to<>>;

  std::size_t ClientFor(std::string_view client_id, std::optional<std::string_view> username);
  std::size_t OtherClient();
  // Gives `open` its client record and counts it open there.
  void GiveRecord(Open& open);
  std::size_t GroupFor(std::string_view topic);

  const MeterLimits limits_;
  std::vector<ClientSlot> clients_;  // the overflow record among them once needed
  std::size_t other_client_ = SIZE_MAX;
  Index client_index_;  // key: client id, '\0', then '-' or '+' and the user name
  std::unordered_map<Connection, Open> connections_;
  std::vector<GroupSlot> groups_;
  std::size_t other_group_ = SIZE_MAX;
  Index group_index_;
  std::string key_;  // reused to build client keys at connect
};

}  // namespace billing::plugin
