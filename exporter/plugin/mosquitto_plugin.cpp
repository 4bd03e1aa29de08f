// Broker glue of the billing plugin: Mosquitto 2.0's plugin API (version 5) calls these C entry
// points from its single main thread. Counting is the Meter's; this file only translates events,
// reads the clocks and publishes the snapshot. No exception may cross into the broker: every
// callback catches everything, logs, and lets the broker go on.
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include <ctime>
#include <memory>
#include <string>

#include "meter.h"
#include "plugin_abi.h"
#include "plugin_options.h"
#include "usage_snapshot.h"

namespace {

using billing::plugin::Meter;
using billing::plugin::PluginOptions;

std::int64_t MonotonicMs() {
  timespec t{};
  // Coarse: a vDSO read of the last tick (a few ms resolution), cheap enough for every tick.
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
}

std::uint64_t RealtimeMs() {
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1000 +
         static_cast<std::uint64_t>(t.tv_nsec) / 1000000;
}

struct Plugin {
  explicit Plugin(PluginOptions o) : options(std::move(o)), meter(options.limits) {}
  mosquitto_plugin_id_t* id = nullptr;
  PluginOptions options;
  Meter meter;
  std::uint64_t start_unix_s = RealtimeMs() / 1000;
  std::uint64_t sequence = 0;
  std::int64_t next_snapshot_ms = 0;
  std::string encoded;  // reused between snapshots
  std::uint32_t messages_since_check = 0;
};

std::unique_ptr<Plugin> g_plugin;  // one instance: Mosquitto loads a plugin once

void Publish(Plugin& plugin) {
  const std::int64_t now = MonotonicMs();
  auto snapshot = plugin.meter.Take(now);
  snapshot.broker_start_unix_s = plugin.start_unix_s;
  snapshot.taken_unix_ms = RealtimeMs();
  snapshot.sequence = ++plugin.sequence;
  snapshot.interval_ms = static_cast<std::uint64_t>(plugin.options.snapshot_interval.count());
  plugin.encoded.clear();
  billing::plugin::EncodeSnapshot(snapshot, plugin.encoded);
  // Retained, so an exporter that (re)connects has the counts at once; the copy is the broker's.
  const int rc = mosquitto_broker_publish_copy(nullptr, plugin.options.snapshot_topic.c_str(),
                                               static_cast<int>(plugin.encoded.size()),
                                               plugin.encoded.data(), 0, true, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    mosquitto_log_printf(MOSQ_LOG_WARNING, "billing: cannot publish the usage snapshot: %s",
                         mosquitto_strerror(rc));
  }
  plugin.next_snapshot_ms = now + plugin.options.snapshot_interval.count();
}

template <typename F>
int Guarded(const char* what, F&& f, int on_success) {
  try {
    f();
  } catch (const std::exception& e) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "billing: %s failed: %s", what, e.what());
  } catch (...) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "billing: %s failed", what);
  }
  return on_success;
}

std::optional<std::string_view> Username(const char* username) {
  if (username == nullptr) return std::nullopt;
  return std::string_view(username);
}

void ConnectClient(Plugin& plugin, const mosquitto* client, const char* username) {
  const char* id = mosquitto_client_id(client);
  plugin.meter.Connect(client, id != nullptr ? id : "", Username(username), MonotonicMs());
}

// Mosquitto 2.0 sends MOSQ_EVT_TICK only without per_listener_settings; the other events look at
// the clock too (a message only every 4096th time), so snapshots then follow the traffic.
void MaybePublish(Plugin& plugin) {
  if (MonotonicMs() < plugin.next_snapshot_ms) return;
  Guarded(
      "publishing the usage snapshot", [&] { Publish(plugin); }, MOSQ_ERR_SUCCESS);
}

int OnBasicAuth(int, void* event_data, void*) {
  auto* event = static_cast<mosquitto_evt_basic_auth*>(event_data);
  Guarded(
      "counting a connection", [&] { ConnectClient(*g_plugin, event->client, event->username); },
      0);
  MaybePublish(*g_plugin);
  // Metering only: the decision is the other authentication methods'.
  return MOSQ_ERR_PLUGIN_DEFER;
}

// Counts every PUBLISH the broker shows the plugin, also a QoS 2 PUBLISH that the client re-sends
// (same packet id, DUP set) before its PUBREL, which the broker delivers only once. Mosquitto
// 2.0.11 runs this event (handle__publish: plugin__handle_message) before its duplicate check
// (db__message_store_find over the client's unreleased messages), and gives a plugin neither the
// packet id nor the DUP flag, nor any event at PUBREL. Equal content does not make a re-send (a
// device may send the same payload twice), and neither would a DUP flag: the broker takes a DUP
// PUBLISH in a new session, or with other content than the message it holds, as new. So the plugin
// counts as the broker's own $SYS/broker/publish/messages/received does (PluginQos2Test).
int OnMessage(int, void* event_data, void*) {
  auto* event = static_cast<mosquitto_evt_message*>(event_data);
  Plugin& plugin = *g_plugin;
  const std::string_view topic = event->topic != nullptr ? event->topic : "";
  if ((++plugin.messages_since_check & 4095) == 0) MaybePublish(plugin);
  if (plugin.meter.Publish(event->client, topic, event->payloadlen)) return MOSQ_ERR_SUCCESS;
  // A connection that skipped authentication (certificate identity as user name, extended
  // authentication): metered from its first PUBLISH.
  return Guarded(
      "counting a message",
      [&] {
        ConnectClient(plugin, event->client, mosquitto_client_username(event->client));
        plugin.meter.Publish(event->client, topic, event->payloadlen);
      },
      MOSQ_ERR_SUCCESS);
}

int OnDisconnect(int, void* event_data, void*) {
  auto* event = static_cast<mosquitto_evt_disconnect*>(event_data);
  g_plugin->meter.Disconnect(event->client, MonotonicMs());  // allocates nothing, cannot throw
  MaybePublish(*g_plugin);
  return MOSQ_ERR_SUCCESS;
}

int OnTick(int, void*, void*) {
  MaybePublish(*g_plugin);
  return MOSQ_ERR_SUCCESS;
}

struct Registration {
  int event;
  MOSQ_FUNC_generic_callback callback;
};
constexpr Registration kCallbacks[] = {
    {MOSQ_EVT_BASIC_AUTH, OnBasicAuth},
    {MOSQ_EVT_MESSAGE, OnMessage},
    {MOSQ_EVT_DISCONNECT, OnDisconnect},
    {MOSQ_EVT_TICK, OnTick},
};

}  // namespace

// Only the entry points leave the library (it is built with hidden visibility), so its C++ symbols
// never meet another plugin's.
#define BILLING_PLUGIN_EXPORT __attribute__((visibility("default")))

extern "C" {

BILLING_PLUGIN_EXPORT int mosquitto_plugin_version(int supported_version_count,
                                                   const int* supported_versions) {
  return billing::plugin::NegotiatePluginVersion(supported_version_count, supported_versions);
}

BILLING_PLUGIN_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t* identifier, void** userdata,
                                                mosquitto_opt* options, int option_count) {
  *userdata = nullptr;
  try {
    const auto pairs = billing::plugin::OptionPairs(options, option_count);
    auto parsed = billing::plugin::ParsePluginOptions(pairs);
    if (!parsed.ok()) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "billing: %s", parsed.error().c_str());
      return MOSQ_ERR_INVAL;
    }
    g_plugin = std::make_unique<Plugin>(std::move(parsed).value());
    g_plugin->id = identifier;
    for (const auto& r : kCallbacks) {
      if (r.event == MOSQ_EVT_BASIC_AUTH && !g_plugin->options.connect_from_auth) continue;
      const int rc = mosquitto_callback_register(identifier, r.event, r.callback, nullptr, nullptr);
      if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "billing: cannot register for event %d: %s", r.event,
                             mosquitto_strerror(rc));
        return rc;
      }
    }
    // The first snapshot (all zeros) replaces a retained one the broker may have restored from
    // its persistence file, before any client can connect and read it.
    Publish(*g_plugin);
    mosquitto_log_printf(
        MOSQ_LOG_INFO, "billing: metering every client, snapshot to %s every %lld s",
        g_plugin->options.snapshot_topic.c_str(),
        static_cast<long long>(g_plugin->options.snapshot_interval.count() / 1000));
    return MOSQ_ERR_SUCCESS;
  } catch (const std::exception& e) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "billing: cannot start: %s", e.what());
    return MOSQ_ERR_UNKNOWN;
  }
}

BILLING_PLUGIN_EXPORT int mosquitto_plugin_cleanup(void*, mosquitto_opt*, int) {
  if (g_plugin) {
    for (const auto& r : kCallbacks) {
      if (r.event == MOSQ_EVT_BASIC_AUTH && !g_plugin->options.connect_from_auth) continue;
      mosquitto_callback_unregister(g_plugin->id, r.event, r.callback, nullptr);
    }
  }
  g_plugin.reset();
  return MOSQ_ERR_SUCCESS;
}

}  // extern "C"
