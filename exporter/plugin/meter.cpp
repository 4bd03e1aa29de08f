#include "meter.h"

#include "topic_groups.h"
#include "usage_ledger.h"

namespace billing::plugin {

Meter::Meter(MeterLimits limits) : limits_(limits) {
  // Reserved up front so the hot path never sees a rehash or a vector move of its own making.
  clients_.reserve(limits_.max_clients + 1);
  client_index_.reserve(limits_.max_clients + 1);
  groups_.reserve(limits_.max_topic_groups + 1);
  group_index_.reserve(limits_.max_topic_groups + 1);
}

std::size_t Meter::OtherClient() {
  if (other_client_ == SIZE_MAX) {
    other_client_ = clients_.size();
    clients_.push_back({});
    clients_.back().record.other = true;
  }
  return other_client_;
}

std::size_t Meter::ClientFor(std::string_view client_id, std::optional<std::string_view> username) {
  key_.assign(client_id);
  key_.push_back('\0');
  key_.push_back(username ? '+' : '-');
  if (username) key_.append(*username);
  if (const auto it = client_index_.find(key_); it != client_index_.end()) return it->second;
  const std::size_t named = clients_.size() - (other_client_ != SIZE_MAX ? 1 : 0);
  if (named >= limits_.max_clients || client_id.size() > kMaxStringBytes ||
      (username && username->size() > kMaxStringBytes)) {
    return OtherClient();
  }
  const std::size_t slot = clients_.size();
  clients_.push_back({});
  auto& record = clients_.back().record;
  record.client_id.assign(client_id);
  record.has_username = username.has_value();
  if (username) record.username.assign(*username);
  client_index_.emplace(key_, slot);
  return slot;
}

void Meter::GiveRecord(Open& open) {
  open.client = ClientFor(open.client_id, open.username);
  ++clients_[open.client].record.connections_open;
  open.client_id.clear();
  open.username.reset();
}

void Meter::Connect(Connection connection, std::string_view client_id,
                    std::optional<std::string_view> username, std::int64_t now_ms) {
  if (connections_.contains(connection)) return;
  for (const auto& unmetered : limits_.unmetered_client_ids) {
    if (client_id == unmetered) {
      connections_.emplace(connection, Open{kUnmetered, now_ms, {}, {}});
      return;
    }
  }
  Open open{kNoRecordYet, now_ms, std::string(client_id),
            username ? std::optional<std::string>(*username) : std::nullopt};
  key_.assign(client_id);
  key_.push_back('\0');
  key_.push_back(username ? '+' : '-');
  if (username) key_.append(*username);
  if (client_index_.contains(key_)) GiveRecord(open);  // a known client: no new record taken
  connections_.emplace(connection, std::move(open));
}

void Meter::Disconnect(Connection connection, std::int64_t now_ms) {
  const auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  if (it->second.client == kUnmetered) {
    connections_.erase(it);
    return;
  }
  if (it->second.client == kNoRecordYet) {
    if (now_ms - it->second.since_ms >= kRecordAfterMs) {
      GiveRecord(it->second);
    } else {
      it->second.client = OtherClient();
      ++clients_[it->second.client].record.connections_open;
    }
  }
  auto& record = clients_[it->second.client].record;
  if (now_ms > it->second.since_ms) {
    record.usage.connection_ms += static_cast<std::uint64_t>(now_ms - it->second.since_ms);
  }
  --record.connections_open;
  connections_.erase(it);
}

std::size_t Meter::GroupFor(std::string_view topic) {
  const std::string_view group = exporter::LeadingLevels(topic, limits_.topic_group_levels);
  if (const auto it = group_index_.find(group); it != group_index_.end()) return it->second;
  const std::size_t named = groups_.size() - (other_group_ != SIZE_MAX ? 1 : 0);
  // A topic whose group would be named "other" joins the overflow group, as in subscription mode:
  // two series labelled topic_group="other" would collide.
  if (named < limits_.max_topic_groups && group.size() <= kMaxStringBytes &&
      group != exporter::UsageLedger::kOtherGroup) {
    const std::size_t slot = groups_.size();
    groups_.push_back({});
    groups_.back().record.group.assign(group);
    group_index_.emplace(std::string(group), slot);
    return slot;
  }
  if (other_group_ == SIZE_MAX) {
    other_group_ = groups_.size();
    groups_.push_back({});
    groups_.back().record.other = true;
  }
  return other_group_;
}

namespace {
void Add(Usage& usage, std::uint64_t payload, std::uint64_t topic, std::uint64_t units) {
  ++usage.messages;
  usage.payload_bytes += payload;
  usage.topic_bytes += topic;
  usage.units += units;
}
}  // namespace

bool Meter::Publish(Connection connection, std::string_view topic, std::uint64_t payload_bytes) {
  const auto it = connections_.find(connection);
  if (it == connections_.end()) return false;
  if (it->second.client == kUnmetered) return true;
  if (it->second.client == kNoRecordYet) GiveRecord(it->second);  // its first PUBLISH only
  const std::uint64_t topic_bytes = topic.size();
  const std::uint64_t units = MessageUnits(payload_bytes + topic_bytes);
  Add(clients_[it->second.client].record.usage, payload_bytes, topic_bytes, units);
  Add(groups_[GroupFor(topic)].record.usage, payload_bytes, topic_bytes, units);
  return true;
}

Snapshot Meter::Take(std::int64_t now_ms) {
  for (auto& [connection, open] : connections_) {
    if (open.client == kNoRecordYet && now_ms - open.since_ms >= kRecordAfterMs) GiveRecord(open);
  }
  Snapshot snapshot;
  snapshot.clients.reserve(clients_.size());
  for (const auto& slot : clients_) snapshot.clients.push_back(slot.record);
  for (const auto& [connection, open] : connections_) {
    if (open.client < kNoRecordYet && now_ms > open.since_ms) {
      snapshot.clients[open.client].usage.connection_ms +=
          static_cast<std::uint64_t>(now_ms - open.since_ms);
    }
  }
  for (const auto& client : snapshot.clients) snapshot.total += client.usage;
  for (const auto& client : snapshot.clients) snapshot.connections_open += client.connections_open;
  for (const auto& [connection, open] : connections_) {
    if (open.client == kNoRecordYet) ++snapshot.connections_open;
  }
  snapshot.groups.reserve(groups_.size());
  for (const auto& slot : groups_) snapshot.groups.push_back(slot.record);
  return snapshot;
}

}  // namespace billing::plugin
