#include "http_server.h"

#include <civetweb.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>

#include "billing/common/civet_server.h"
#include "billing/common/log.h"
#include "tls_server.h"

namespace billing::exporter {

using billing::common::Log;
using billing::common::LogLevel;
namespace {

// Compares without an early exit, so response time does not reveal how much of
// a guess matched.
bool IsGetOrHead(mg_connection* conn, bool& head) {
  const char* method = mg_get_request_info(conn)->request_method;
  head = std::strcmp(method, "HEAD") == 0;
  return head || std::strcmp(method, "GET") == 0;
}

int SendText(mg_connection* conn, int status, const char* status_text, const std::string& body,
             const char* extra_headers = "") {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: text/plain; "
            "charset=utf-8\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\n%s\r\n",
            status, status_text, body.size(), extra_headers);
  mg_write(conn, body.data(), body.size());
  return status;
}

// Writes a response in as few sends as it can without copying big buffers: pieces are gathered
// in a buffer of at most kMaxGather bytes (so a small page, headers and all, goes out in one
// send, one packet, however many chunks it is made of) and a piece at least that big is written
// as it is. Writes stop at the first failure (the client went away).
class ResponseWriter {
 public:
  static constexpr std::size_t kMaxGather = 64 * 1024;

  ResponseWriter(mg_connection* conn, std::size_t total)
      : conn_(conn),
        capacity_(std::min(total, kMaxGather)),
        buffer_(std::make_unique_for_overwrite<char[]>(capacity_)) {}

  void Write(const char* data, std::size_t size) {
    if (failed_ || size == 0) return;
    if (used_ + size <= capacity_) {
      std::memcpy(buffer_.get() + used_, data, size);
      used_ += size;
      return;
    }
    Flush();
    if (size >= capacity_) {
      Send(data, size);
    } else {
      std::memcpy(buffer_.get(), data, size);
      used_ = size;
    }
  }

  void Flush() {
    if (used_ > 0) Send(buffer_.get(), used_);
    used_ = 0;
  }

 private:
  void Send(const char* data, std::size_t size) {
    if (!failed_ && mg_write(conn_, data, size) <= 0) failed_ = true;
  }

  mg_connection* conn_;
  std::size_t capacity_;
  std::unique_ptr<char[]> buffer_;
  std::size_t used_ = 0;
  bool failed_ = false;
};

}  // namespace

// True if the Accept-Encoding header lists gzip (or *) with a non-zero weight ("gzip; q=0"
// refuses).
bool AcceptsGzip(const char* accept_encoding) {
  if (accept_encoding == nullptr) return false;
  std::string_view rest(accept_encoding);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    auto trim = [](std::string_view v) {
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
      return v;
    };
    const auto semicolon = item.find(';');
    const auto coding = trim(item.substr(0, semicolon));
    if (coding != "gzip" && coding != "*") continue;
    if (semicolon == std::string_view::npos) return true;
    auto params = trim(item.substr(semicolon + 1));
    if (params.substr(0, 2) != "q=") return true;
    return std::strtod(std::string(params.substr(2)).c_str(), nullptr) > 0;
  }
  return false;
}

HttpServer::HttpServer(const HttpOptions& options, const Exposition& exposition)
    : options_(options),
      exposition_(exposition),
      auth_(options.web ? options.web->basic_auth_users : std::map<std::string, std::string>{},
            options.basic_auth_username, options.basic_auth_password) {
  const bool tls = options_.web && options_.web->tls;
  // Before CivetWeb initialises OpenSSL: the shims it must find (tls_server.h).
  if (tls) EnableCivetwebTls();
  // CivetWeb holds a worker thread per open connection, idle keep-alive ones included. Scrapes only
  // copy a prepared buffer, so threads are cheap to have and idle connections are cut short:
  // otherwise a few idle clients could starve /healthz and get the pod restarted.
  // tcp_nodelay: a response is the headers and then the page's chunks, each its own write; with
  // Nagle's algorithm a write shorter than a segment waits for the ACK of the one before it (one
  // round trip per scrape on a pod network). Every write here is a complete piece of a response,
  // so nothing is gained by holding it back.
  common::CivetOptions civet;
  civet.listen = options_.listen;
  civet.threads = 16;
  civet.request_timeout_ms = 5000;
  civet.keep_alive_timeout_ms = 5000;
  civet.tcp_nodelay = true;
  if (tls) {
    civet.configure_tls = [this](void* ssl_ctx) {
      return ConfigureTlsContext(ssl_ctx, *options_.web->tls);
    };
  }
  server_ = std::make_unique<common::CivetServer>(
      civet, std::vector<common::CivetHandler>{{"/metrics$", &HttpServer::HandleMetrics, this},
                                               {"/healthz$", &HttpServer::HandleHealthz, this},
                                               {"/readyz$", &HttpServer::HandleReadyz, this}});
}

HttpServer::~HttpServer() = default;

int HttpServer::port() const { return server_->port(); }

bool HttpServer::Authorized(mg_connection* conn) const {
  return auth_.Authorized(mg_get_header(conn, "Authorization"));
}

int HttpServer::HandleMetrics(mg_connection* conn, void* self_ptr) {
  const auto& self = *static_cast<const HttpServer*>(self_ptr);
  bool head = false;
  if (!IsGetOrHead(conn, head))
    return SendText(conn, 405, "Method Not Allowed", "use GET\n", "Allow: GET, HEAD\r\n");
  if (!self.Authorized(conn)) {
    return SendText(conn, 401, "Unauthorized", "authentication required\n",
                    "WWW-Authenticate: Basic realm=\"billing-exporter\"\r\n");
  }
  // Holding the shared_ptr keeps this page alive even if a new sample replaces
  // it meanwhile.
  const auto page = self.exposition_.Current();
  const bool gzip = AcceptsGzip(mg_get_header(conn, "Accept-Encoding"));
  std::array<char, 256> header{};
  const int header_size = std::snprintf(
      header.data(), header.size(),
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; "
      "charset=utf-8\r\n"
      "Content-Length: %zu\r\n%sVary: Accept-Encoding\r\nCache-Control: "
      "no-store\r\n\r\n",
      gzip ? page->gzip.size() : page->text_size, gzip ? "Content-Encoding: gzip\r\n" : "");
  if (header_size <= 0 || static_cast<std::size_t>(header_size) >= header.size()) return 500;
  ResponseWriter out(conn, static_cast<std::size_t>(header_size) + (head   ? 0
                                                                    : gzip ? page->gzip.size()
                                                                           : page->text_size));
  out.Write(header.data(), static_cast<std::size_t>(header_size));
  if (!head) {
    if (gzip) {
      out.Write(page->gzip.data(), page->gzip.size());
    } else {
      // The plain page is the collectors' texts in sequence; never concatenated as a whole.
      for (const auto& chunk : page->chunks) out.Write(chunk->data(), chunk->size());
    }
  }
  out.Flush();
  return 200;
}

int HttpServer::HandleHealthz(mg_connection* conn, void*) {
  return SendText(conn, 200, "OK", "ok\n");
}

int HttpServer::HandleReadyz(mg_connection* conn, void* self_ptr) {
  const auto& self = *static_cast<const HttpServer*>(self_ptr);
  std::string body;
  bool ready = true;
  for (const auto& health : self.exposition_.Health()) {
    ready = ready && health.ready;
    body += health.name + (health.ready ? ": ready (" : ": not ready (") + health.detail + ")\n";
  }
  return ready ? SendText(conn, 200, "OK", body) : SendText(conn, 503, "Service Unavailable", body);
}

}  // namespace billing::exporter
