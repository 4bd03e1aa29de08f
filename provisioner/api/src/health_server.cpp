#include "health_server.h"

#include <civetweb.h>

#include <chrono>
#include <string>
#include <vector>

#include "billing/common/civet_server.h"

namespace billing::provisioner {
namespace {

// Probes send no body and read a few bytes: anything slower than this is not a probe.
constexpr int kRequestTimeoutMs = 5000;
constexpr int kKeepAliveTimeoutMs = 5000;

struct Answer {
  int status;
  std::string content_type;
  std::string body;
  std::string route;
};

Answer Route(const std::string& method, const std::string& path, ServiceMetrics& metrics) {
  const bool get = method == "GET" || method == "HEAD";
  if (path == "/healthz") {
    if (!get) return {405, "text/plain; charset=utf-8", "method: use GET\n", "/healthz"};
    return {200, "text/plain; charset=utf-8", "ok\n", "/healthz"};
  }
  if (path == "/metrics") {
    if (!get) return {405, "text/plain; charset=utf-8", "method: use GET\n", "/metrics"};
    return {200, "text/plain; version=0.0.4; charset=utf-8", metrics.Serialize(), "/metrics"};
  }
  return {404, "text/plain; charset=utf-8", "not found: this port serves /healthz and /metrics\n",
          "other"};
}

}  // namespace

HealthServer::HealthServer(const HealthOptions& options, ServiceMetrics& metrics)
    : metrics_(metrics) {
  server_ = std::make_unique<common::CivetServer>(
      common::CivetOptions{
          options.listen, options.threads, kRequestTimeoutMs, kKeepAliveTimeoutMs, false, {}},
      std::vector<common::CivetHandler>{{"/", &HealthServer::HandleConnection, this}});
}

HealthServer::~HealthServer() = default;

int HealthServer::port() const { return server_->port(); }

int HealthServer::HandleConnection(mg_connection* conn, void* self_ptr) {
  auto& self = *static_cast<HealthServer*>(self_ptr);
  const auto started = std::chrono::steady_clock::now();
  const mg_request_info* info = mg_get_request_info(conn);
  const std::string method = info->request_method ? info->request_method : "";
  const std::string path = info->local_uri ? info->local_uri : "";
  Answer answer = Route(method, path, self.metrics_);
  if (info->content_length > 0 || mg_get_header(conn, "Transfer-Encoding") != nullptr) {
    // Probes send no body. mg_send_http_error closes the connection unread: answered like any
    // other response, CivetWeb would read the body first, for as long as a client trickles it.
    answer.status = 413;
    mg_send_http_error(conn, answer.status, "%s", "body: this port takes none");
  } else {
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s\r\n",
              answer.status, mg_get_response_code_text(conn, answer.status),
              answer.content_type.c_str(), answer.body.size(),
              answer.status == 405 ? "Allow: GET\r\n" : "");
    if (method != "HEAD") mg_write(conn, answer.body.data(), answer.body.size());
  }
  self.metrics_.ObserveHttp(
      answer.route, method, answer.status,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return answer.status;
}

}  // namespace billing::provisioner
