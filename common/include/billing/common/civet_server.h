// common: a CivetWeb server started the way both programs start theirs (listen address, worker
// threads, timeouts, keep-alive, CivetWeb's messages into the log), the handlers registered, the
// bound port read back. Header-only; only code that links CivetWeb includes it.
#pragma once

#include <civetweb.h>

#include <array>
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
  CivetServer(const CivetOptions& options, const std::vector<CivetHandler>& handlers) {
    mg_init_library(0);
    const std::string threads = std::to_string(options.threads);
    const std::string request_timeout = std::to_string(options.request_timeout_ms);
    const std::string keep_alive_timeout = std::to_string(options.keep_alive_timeout_ms);
    std::vector<const char*> civet_options = {
        "listening_ports",       options.listen.c_str(),    "num_threads",       threads.c_str(),
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
    context_.reset(mg_start(&callbacks, nullptr, civet_options.data()));
    if (!context_) {
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

  /// The port bound (the one asked for, or the one picked for port 0).
  int port() const { return port_; }

 private:
  struct ContextDeleter {
    void operator()(mg_context* context) const { mg_stop(context); }
  };
  std::unique_ptr<mg_context, ContextDeleter> context_;
  int port_ = 0;
};

}  // namespace billing::common
