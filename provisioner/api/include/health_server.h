// api: the health listener, GET /healthz and GET /metrics on a port and threads of their own.
// The API's port is internet facing and its workers can all be held by slow clients; the
// liveness and readiness probes and Prometheus use this listener, so they keep their answers.
// May not depend on: the store, libcurl, kube, service.
#pragma once

#include <memory>
#include <string>

#include "service_metrics.h"

struct mg_connection;
namespace billing::common {
class CivetServer;  // billing/common/civet_server.h
}  // namespace billing::common

namespace billing::provisioner {

struct HealthOptions {
  std::string listen = "0.0.0.0:3001";  // HOST:PORT; port 0 picks a free port
  // Probes and a scrape now and then: a few threads, none shared with the API.
  int threads = 4;
};

class HealthServer {
 public:
  /// Starts listening; throws std::runtime_error naming the address if it cannot.
  HealthServer(const HealthOptions& options, ServiceMetrics& metrics);
  ~HealthServer();
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  int port() const;

 private:
  static int HandleConnection(mg_connection* conn, void* self);

  ServiceMetrics& metrics_;
  std::unique_ptr<common::CivetServer> server_;  // last: stopped first, before what it uses
};

}  // namespace billing::provisioner
