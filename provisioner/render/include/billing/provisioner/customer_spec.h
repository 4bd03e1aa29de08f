// The validated form of the chart's values: what RenderStack needs, with every value checked
// the way values.schema.json and the chart's templates check it. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "billing/common/customer_id.h"
#include "billing/provisioner/result.h"
#include "billing/provisioner/value.h"

namespace billing::provisioner {

/// Longest customer.id (billing/common/customer_id.h says why).
using common::kMaxCustomerIdLength;

/// A container image: repository, tag (empty: the chart's appVersion) and pull policy.
struct ImageSpec {
  std::string repository;
  std::string tag;
  std::string pull_policy;  // Always, IfNotPresent or Never
};

/// An image, a port and resource requirements: what every workload has.
struct WorkloadSpec {
  ImageSpec image;
  std::int64_t port = 0;
  /// {requests: {cpu: ..., memory: ...}, limits: {...}} with keys sorted, quantities checked.
  Value resources;
  /// The image's non-root user the pod runs as (the restricted Pod Security profile): never 0.
  std::int64_t run_as_user = 0;
  std::int64_t run_as_group = 0;
  bool read_only_root_filesystem = true;  // false only for an api/dashboard image that needs it
};

struct CustomerSpec {
  std::string id;            // DNS-1123 label, at most kMaxCustomerIdLength characters
  std::string email;         // optional (empty), else an address
  std::string company_name;  // optional; any text, rendered only as quoted or base64 data
  std::string license_key;
  std::string domain_base;  // DNS-1123 subdomain
  bool create_namespace = false;

  struct Postgres {
    WorkloadSpec workload;
    std::string database;
    std::string username;
    std::string password;  // URL-safe characters only (in DATABASE_URL); empty: to be generated
    std::string storage_size;
    std::string storage_class;  // empty: the cluster's default StorageClass
  } postgres;

  /// A user of the tenant's broker: its password (for the client) and the password file's hash
  /// of it (for the broker). Both empty: to be generated.
  struct BrokerUser {
    std::string username;       // [A-Za-z0-9._-]{1,64}
    std::string password;       // [A-Za-z0-9._~-]{16,}
    std::string password_hash;  // Mosquitto's "$7$<iterations>$<salt>$<hash>"
  };

  struct Mosquitto {
    WorkloadSpec workload;  // workload.port is the MQTT port
    std::int64_t websocket_port = 0;
    std::int64_t sys_interval_seconds = 0;
    std::int64_t max_queued_messages = 0;  // 0: unlimited (mosquitto's meaning)
    // mosquitto.metering.source: the billing plugin in the broker counts (true), or the exporter
    // subscribes to '#' (false).
    bool plugin_metering = true;
    std::int64_t snapshot_interval_seconds = 0;  // the plugin's, in plugin mode
    BrokerUser
        exporter_user;       // mosquitto.auth.exporter: reads $SYS/broker/# and # or $SYS/billing/#
    BrokerUser device_user;  // mosquitto.auth.device: reads and writes #
  } mosquitto;

  WorkloadSpec api;
  WorkloadSpec dashboard;

  struct Exporter {
    WorkloadSpec workload;
    std::string sample_interval;
    std::string basic_auth_username;
    std::string basic_auth_password;  // empty: /metrics without auth
    bool service_monitor = false;
    std::string service_monitor_interval;
    std::string service_monitor_scrape_timeout;
  } exporter;

  struct Ingress {
    bool enabled = false;
    std::string class_name;
    Value annotations;  // map of string to string, keys sorted
    bool tls = false;
    bool expose_metrics = false;
  } ingress;

  struct ResourceQuota {
    bool enabled = false;
    std::string cpu;
    std::string memory;
    std::string pvcs;
    std::string services;
  } resource_quota;

  struct NetworkPolicy {
    bool enabled = false;
    std::string ingress_controller_namespace;
    std::string prometheus_namespace;           // empty: no rule for Prometheus
    std::string device_ingress_namespace;       // empty: the broker only from the namespace
    std::vector<std::string> api_server_cidrs;  // IPv4, denied to egress with 169.254.0.0/16
  } network_policy;
};

/// Checks merged values and returns the spec, or the first problem as "path: what is wrong".
Result<CustomerSpec> ParseCustomerSpec(const Value& values);

// Syntax checks shared with the tests (the same rules the Kubernetes API server applies).
bool IsDns1123Label(const std::string& text);      // [a-z0-9]([-a-z0-9]*[a-z0-9])?, <= 63
bool IsDns1123Subdomain(const std::string& text);  // dot-separated labels, <= 253
bool IsQuantity(const std::string& text);          // resource.Quantity syntax
bool IsQualifiedName(const std::string& text);     // label/annotation key: [prefix/]name

}  // namespace billing::provisioner
