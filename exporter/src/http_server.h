// The exporter's HTTP listener (CivetWeb): /metrics serves the current page as
// prepared bytes (gzip when the client accepts it), /healthz says the process
// is alive, /readyz says whether every collector sampled successfully within
// three intervals.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "basic_auth.h"
#include "exposition.h"
#include "web_config.h"

struct mg_connection;
namespace billing::common {
class CivetServer;  // billing/common/civet_server.h
}  // namespace billing::common

namespace billing::exporter {

struct HttpOptions {
  std::string listen;               // HOST:PORT; port 0 picks a free port
  std::string basic_auth_username;  // both empty: /metrics open
  std::string basic_auth_password;
  // The web configuration file (--web.config.file): TLS and bcrypt users. With tls set the
  // listener speaks only HTTPS.
  std::optional<WebConfig> web;
};

/// True if an Accept-Encoding header value accepts gzip ("gzip", "*", not "gzip;q=0").
bool AcceptsGzip(const char* accept_encoding);

class HttpServer {
 public:
  /// Starts listening; throws std::runtime_error naming the address if it
  /// cannot.
  HttpServer(const HttpOptions& options, const Exposition& exposition);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  const BasicAuth& auth() const { return auth_; }

 private:
  static int HandleMetrics(mg_connection* conn, void* self);
  static int HandleHealthz(mg_connection* conn, void* self);
  static int HandleReadyz(mg_connection* conn, void* self);
  bool Authorized(mg_connection* conn) const;

  const HttpOptions options_;
  const Exposition& exposition_;
  BasicAuth auth_;
  std::unique_ptr<common::CivetServer> server_;
};

}  // namespace billing::exporter
