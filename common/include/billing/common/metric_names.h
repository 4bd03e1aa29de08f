// common: the metric contract (docs/DESIGN.md, "Metric contract"), the names the exporter exports
// and the provisioner's usage job queries; the recording rules and dashboards use them too.
// Header-only, std only. Change them only together with docs/DESIGN.md.
#pragma once

namespace billing::common::metric_names {

inline constexpr const char* kPostgresUp = "iotistic_postgres_up";
inline constexpr const char* kDatabaseSize = "iotistic_postgres_database_size_bytes";
inline constexpr const char* kTableRowsEstimated = "iotistic_postgres_table_rows_estimated";
inline constexpr const char* kTableRows = "iotistic_postgres_table_rows";
inline constexpr const char* kTableRowsInserted = "iotistic_postgres_table_rows_inserted_total";
inline constexpr const char* kTableSize = "iotistic_postgres_table_size_bytes";
inline constexpr const char* kTables = "iotistic_postgres_tables";
inline constexpr const char* kTablesSizeMeasured = "iotistic_postgres_tables_size_measured";
inline constexpr const char* kRowsInserted = "iotistic_postgres_rows_inserted_total";
inline constexpr const char* kStatsReset = "iotistic_postgres_stats_reset_timestamp_seconds";
inline constexpr const char* kPostgresStartTime = "iotistic_postgres_start_time_seconds";

inline constexpr const char* kSampleDuration = "iotistic_exporter_sample_duration_seconds";
inline constexpr const char* kLastSampleTimestamp =
    "iotistic_exporter_last_sample_timestamp_seconds";
inline constexpr const char* kSampleErrors = "iotistic_exporter_sample_errors_total";
inline constexpr const char* kBuildInfo = "iotistic_exporter_build_info";

}  // namespace billing::common::metric_names

namespace billing::common::metric_names {

inline constexpr const char* kMqttUp = "iotistic_mqtt_up";
inline constexpr const char* kBrokerPublishReceived =
    "iotistic_mqtt_broker_publish_messages_received_total";
inline constexpr const char* kBrokerPublishSent =
    "iotistic_mqtt_broker_publish_messages_sent_total";
inline constexpr const char* kBrokerPublishDropped =
    "iotistic_mqtt_broker_publish_messages_dropped_total";
inline constexpr const char* kBrokerBytesReceived = "iotistic_mqtt_broker_bytes_received_total";
inline constexpr const char* kBrokerBytesSent = "iotistic_mqtt_broker_bytes_sent_total";
inline constexpr const char* kBrokerNetworkBytesReceived =
    "iotistic_mqtt_broker_network_bytes_received_total";
inline constexpr const char* kBrokerNetworkBytesSent =
    "iotistic_mqtt_broker_network_bytes_sent_total";
inline constexpr const char* kBrokerClientsConnected = "iotistic_mqtt_broker_clients_connected";
inline constexpr const char* kBrokerSubscriptions = "iotistic_mqtt_broker_subscriptions";
inline constexpr const char* kBrokerRetainedMessages = "iotistic_mqtt_broker_retained_messages";
inline constexpr const char* kBrokerStartTime = "iotistic_mqtt_broker_start_time_seconds";
inline constexpr const char* kMqttMessages = "iotistic_mqtt_messages_total";
inline constexpr const char* kMqttPayloadBytes = "iotistic_mqtt_payload_bytes_total";
inline constexpr const char* kMqttSysPayloadErrors = "iotistic_mqtt_sys_payload_errors_total";
// Plugin mode (the broker plugin's counts).
inline constexpr const char* kMqttConnectionSeconds = "iotistic_mqtt_connection_seconds_total";
inline constexpr const char* kMqttMessageUnits = "iotistic_mqtt_message_units_total";
inline constexpr const char* kMqttClientMessages =
    "iotistic_mqtt_client_publish_messages_received_total";
inline constexpr const char* kMqttClientBytes = "iotistic_mqtt_client_bytes_received_total";
inline constexpr const char* kMqttClientUnits = "iotistic_mqtt_client_message_units_total";
inline constexpr const char* kMqttClientConnectionSeconds =
    "iotistic_mqtt_client_connection_seconds_total";

}  // namespace billing::common::metric_names

namespace billing::exporter {
// The exporter's code says names::kX.
namespace names = common::metric_names;
}  // namespace billing::exporter
