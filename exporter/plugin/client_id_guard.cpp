// A Mosquitto 2.0 plugin (API version 5) that reserves one client id to one user name:
//
//   plugin /usr/lib/iotistic/billing_client_id_guard.so
//   plugin_opt_client_id billing-exporter-abc123
//   plugin_opt_username billing-exporter
//
// Mosquitto 2.0 has no per-user client-id restriction, and a client that connects with a client
// id in use takes that session over. The exporter's id is predictable, so without this any user
// of the broker could kick the exporter off (billing gaps) or inherit its persistent session.
// The decision is client_id_guard.h's: a refusal answers MOSQ_ERR_AUTH (CONNACK "not
// authorised"); anything else defers, and Mosquitto then checks the password file, which runs
// after the plugins' MOSQ_EVT_BASIC_AUTH callbacks (Mosquitto 2.0.11, tests/exporter
// broker_auth_e2e_test).
#include "client_id_guard.h"

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include <exception>
#include <memory>
#include <string>

#include "plugin_abi.h"

namespace {

using billing::plugin::GuardDecision;
using billing::plugin::GuardOptions;

struct Guard {
  mosquitto_plugin_id_t* id = nullptr;
  GuardOptions options;
};

std::unique_ptr<Guard> g_guard;  // Mosquitto loads a plugin once

int OnBasicAuth(int, void* event_data, void*) {
  const auto* event = static_cast<mosquitto_evt_basic_auth*>(event_data);
  const char* client_id = mosquitto_client_id(event->client);
  const auto decision = billing::plugin::DecideConnect(
      g_guard->options, client_id != nullptr ? client_id : "",
      event->username != nullptr ? std::optional<std::string_view>(event->username) : std::nullopt);
  if (decision == GuardDecision::kDefer) return MOSQ_ERR_PLUGIN_DEFER;
  mosquitto_log_printf(MOSQ_LOG_NOTICE,
                       "client-id guard: refused client id %s for user %s (reserved to %s)",
                       g_guard->options.client_id.c_str(),
                       event->username != nullptr ? event->username : "(anonymous)",
                       g_guard->options.username.c_str());
  return MOSQ_ERR_AUTH;
}

}  // namespace

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
    auto parsed = billing::plugin::ParseGuardOptions(pairs);
    if (!parsed.ok()) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "client-id guard: %s", parsed.error().c_str());
      return MOSQ_ERR_INVAL;
    }
    g_guard = std::make_unique<Guard>();
    g_guard->id = identifier;
    g_guard->options = std::move(parsed).value();
    const int rc =
        mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, OnBasicAuth, nullptr, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "client-id guard: cannot register: %s",
                           mosquitto_strerror(rc));
      return rc;
    }
    mosquitto_log_printf(MOSQ_LOG_INFO, "client-id guard: client id %s reserved to user %s",
                         g_guard->options.client_id.c_str(), g_guard->options.username.c_str());
    return MOSQ_ERR_SUCCESS;
  } catch (const std::exception& e) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "client-id guard: cannot start: %s", e.what());
    return MOSQ_ERR_UNKNOWN;
  }
}

BILLING_PLUGIN_EXPORT int mosquitto_plugin_cleanup(void*, mosquitto_opt*, int) {
  if (g_guard) {
    mosquitto_callback_unregister(g_guard->id, MOSQ_EVT_BASIC_AUTH, OnBasicAuth, nullptr);
  }
  g_guard.reset();
  return MOSQ_ERR_SUCCESS;
}

}  // extern "C"
