// common: a CivetWeb server started the way both programs start theirs (listen address, worker
// threads, timeouts, keep-alive, CivetWeb's messages into the log), the handlers registered, the
// bound port read back. Header-only; only code that links CivetWeb includes it.
#pragma once

#include <civetweb.h>

#include <array>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "billing/common/log.h"

namespace billing::common {

struct CivetOptions {
  std::string listen;  // HOST:PORT; port 0 picks a free port
  int threads = 16;
  int request_timeout_ms = 10000;
  int keep_alive_timeout_ms = 5000;
  bool tcp_nodelay = false;
  // Set: the listener speaks HTTPS only, and this configures CivetWeb's server SSL_CTX (passed as
  // void*), returning "" or what is wrong. With Debian's CivetWeb and OpenSSL 3 the caller must
  // have loaded the shims first (exporter/src/tls_server.h).
  std::function<std::string(void* ssl_ctx)> configure_tls;
};

struct CivetHandler {
  std::string uri;  // CivetWeb's pattern ("/metrics$"; "/" matches every path)
  mg_request_handler handler;
  void* data;
};

class CivetServer {
 public:
  /// Starts listening and registers `handlers`; throws std::runtime_error naming the address if it
  /// cannot listen.
  CivetServer(const CivetOptions& options, const std::vector<CivetHandler>& handlers)
      : configure_tls_(options.configure_tls) {
    const bool tls = static_cast<bool>(configure_tls_);
    if (tls && (mg_init_library(MG_FEATURES_SSL) & MG_FEATURES_SSL) == 0) {
      throw std::runtime_error("TLS: CivetWeb could not initialise OpenSSL");
    }
    if (!tls) mg_init_library(0);
    // CivetWeb marks an HTTPS port with a trailing 's'.
    const std::string listening_ports = options.listen + (tls ? "s" : "");
    const std::string threads = std::to_string(options.threads);
    const std::string request_timeout = std::to_string(options.request_timeout_ms);
    const std::string keep_alive_timeout = std::to_string(options.keep_alive_timeout_ms);
    std::vector<const char*> civet_options = {
        "listening_ports",       listening_ports.c_str(),   "num_threads",       threads.c_str(),
        "request_timeout_ms",    request_timeout.c_str(),   "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", keep_alive_timeout.c_str()};
    if (options.tcp_nodelay) {
      civet_options.push_back("tcp_nodelay");
      civet_options.push_back("1");
    }
    civet_options.push_back(nullptr);
    mg_callbacks callbacks{};
    callbacks.log_message = [](const mg_connection*, const char* message) {
      Log(LogLevel::kWarn, "http", message);
      return 1;
    };
    if (tls) {
      // 1: the callback configured the context (certificates included); -1: refuse to start.
      callbacks.init_ssl = [](void* ssl_ctx, void* self) {
        auto& server = *static_cast<CivetServer*>(self);
        server.tls_error_ = server.configure_tls_(ssl_ctx);
        return server.tls_error_.empty() ? 1 : -1;
      };
    }
    context_.reset(mg_start(&callbacks, this, civet_options.data()));
    if (!context_) {
      if (!tls_error_.empty()) throw std::runtime_error("web config: " + tls_error_);
      throw std::runtime_error("cannot listen on " + options.listen +
                               " (address in use or not available here?)");
    }
    for (const auto& h : handlers) {
      mg_set_request_handler(context_.get(), h.uri.c_str(), h.handler, h.data);
    }
    std::array<mg_server_port, 4> ports{};
    if (mg_get_server_ports(context_.get(), static_cast<int>(ports.size()), ports.data()) > 0) {
      port_ = ports[0].port;
    }
  }

  // CivetWeb holds a pointer to this object (its callbacks' user data).
  CivetServer(const CivetServer&) = delete;
  CivetServer& operator=(const CivetServer&) = delete;

  /// The port bound (the one asked for, or the one picked for port 0).
  int port() const { return port_; }

 private:
  struct ContextDeleter {
    void operator()(mg_context* context) const { mg_stop(context); }
  };
  std::function<std::string(void*)> configure_tls_;
  std::string tls_error_;  // what configure_tls refused, for the start-up error
  std::unique_ptr<mg_context, ContextDeleter> context_;
  int port_ = 0;
};

}  // namespace billing::common
