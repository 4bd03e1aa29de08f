#include "mqtt_transport.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace billing::exporter::mqtt {
namespace {

std::string ErrnoText(int error) { return std::strerror(error); }

// The oldest OpenSSL error queued by the failed call, and clears the queue.
std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown TLS error";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

bool IsIpLiteral(const std::string& host) {
  in6_addr any;
  return inet_pton(AF_INET, host.c_str(), &any) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &any) == 1;
}

}  // namespace

Wakeup::Wakeup() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (fd_ < 0) throw std::runtime_error("eventfd: " + ErrnoText(errno));
}

Wakeup::~Wakeup() { ::close(fd_); }

void Wakeup::Signal() {
  const std::uint64_t one = 1;
  // Cannot fail short of the counter overflowing, which a few signals never reach.
  [[maybe_unused]] const auto written = ::write(fd_, &one, sizeof(one));
}

bool Wakeup::WaitFor(std::chrono::milliseconds timeout) const {
  pollfd fds[] = {{fd_, POLLIN, 0}};
  return ::poll(fds, 1, static_cast<int>(timeout.count())) > 0;
}

BrokerAddress ParseBrokerUrl(const std::string& url) {
  BrokerAddress address;
  const auto scheme_end = url.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : url.substr(0, scheme_end);
  if (scheme == "ssl" || scheme == "mqtts") {
    address.tls = true;
  } else if (scheme != "tcp" && scheme != "mqtt") {
    throw std::invalid_argument("'" + url +
                                "' is not a tcp://, mqtt://, ssl:// or mqtts:// address");
  }
  std::string rest = url.substr(scheme_end + 3);
  if (const auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    throw std::invalid_argument("'" + url + "' has no host:port");
  }
  address.host = rest.substr(0, colon);
  if (address.host.size() > 2 && address.host.front() == '[' && address.host.back() == ']') {
    address.host = address.host.substr(1, address.host.size() - 2);
  }
  const int port = std::stoi(rest.substr(colon + 1));
  if (port < 1 || port > 65535) throw std::invalid_argument("'" + url + "' has a bad port");
  address.port = static_cast<std::uint16_t>(port);
  return address;
}

struct BrokerConnection::Tls {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> context{nullptr, SSL_CTX_free};
  std::unique_ptr<SSL, decltype(&SSL_free)> session{nullptr, SSL_free};
};

BrokerConnection::Socket::~Socket() {
  if (fd >= 0) ::close(fd);
}

BrokerConnection::BrokerConnection(const BrokerAddress& address, const std::string& ca_file,
                                   Clock::time_point deadline, const Wakeup& wakeup)
    : wakeup_(wakeup) {
  Connect(address, deadline);
  if (address.tls) Handshake(address, ca_file, deadline);
}

BrokerConnection::~BrokerConnection() = default;

void BrokerConnection::Connect(const BrokerAddress& address, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (const int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw TransportError("cannot resolve " + address.host + ": " + ::gai_strerror(rc));
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  std::string error = "no address";
  for (const addrinfo* candidate = found; candidate != nullptr; candidate = candidate->ai_next) {
    Socket attempt;
    attempt.fd = ::socket(candidate->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (attempt.fd < 0) {
      error = ErrnoText(errno);
      continue;
    }
    std::swap(socket_.fd, attempt.fd);  // WaitFor polls socket_; a failed attempt closes it
    if (::connect(socket_.fd, candidate->ai_addr, candidate->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        error = ErrnoText(errno);
        std::swap(socket_.fd, attempt.fd);
        continue;
      }
      WaitFor(POLLOUT, deadline, "connecting");
      int so_error = 0;
      socklen_t length = sizeof(so_error);
      ::getsockopt(socket_.fd, SOL_SOCKET, SO_ERROR, &so_error, &length);
      if (so_error != 0) {
        error = ErrnoText(so_error);
        std::swap(socket_.fd, attempt.fd);
        continue;
      }
    }
    // Acknowledgements and pings are small and must not wait for more bytes to join them.
    const int on = 1;
    ::setsockopt(socket_.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    return;
  }
  throw TransportError(error);
}

void BrokerConnection::Handshake(const BrokerAddress& address, const std::string& ca_file,
                                 Clock::time_point deadline) {
  ERR_clear_error();
  tls_ = std::make_unique<Tls>();
  tls_->context.reset(SSL_CTX_new(TLS_client_method()));
  if (!tls_->context) throw TransportError("TLS: " + OpenSslError());
  SSL_CTX* context = tls_->context.get();
  SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
  if (!ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(context, ca_file.c_str(), nullptr) != 1) {
      throw TransportError("cannot load the CA file " + ca_file + ": " + OpenSslError());
    }
  } else if (SSL_CTX_set_default_verify_paths(context) != 1) {
    throw TransportError("cannot load the system's CA certificates: " + OpenSslError());
  }
  tls_->session.reset(SSL_new(context));
  SSL* ssl = tls_->session.get();
  if (ssl == nullptr || SSL_set_fd(ssl, socket_.fd) != 1) {
    throw TransportError("TLS: " + OpenSslError());
  }
  // The certificate must name the broker we asked for: its IP address, or its host name (also
  // sent as SNI).
  const bool host_set =
      IsIpLiteral(address.host)
          ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), address.host.c_str()) == 1
          : SSL_set_tlsext_host_name(ssl, address.host.c_str()) == 1 &&
                SSL_set1_host(ssl, address.host.c_str()) == 1;
  if (!host_set) throw TransportError("TLS: cannot check the name " + address.host);
  for (;;) {
    ERR_clear_error();
    const int rc = SSL_connect(ssl);
    if (rc == 1) return;
    const int error = SSL_get_error(ssl, rc);
    if (error == SSL_ERROR_WANT_READ) {
      WaitFor(POLLIN, deadline, "in the TLS handshake");
    } else if (error == SSL_ERROR_WANT_WRITE) {
      WaitFor(POLLOUT, deadline, "in the TLS handshake");
    } else if (const long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
      throw TransportError(std::string("the broker's certificate was not accepted: ") +
                           X509_verify_cert_error_string(verify));
    } else {
      throw TransportError("TLS handshake failed: " + OpenSslError());
    }
  }
}

void BrokerConnection::WaitFor(short events, Clock::time_point deadline, const char* what) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) throw TransportError(std::string("timed out ") + what);
    pollfd fds[] = {{socket_.fd, events, 0}, {wakeup_.fd(), POLLIN, 0}};
    const int rc = ::poll(fds, 2, static_cast<int>(left));
    if (rc < 0 && errno != EINTR) throw TransportError("poll: " + ErrnoText(errno));
    if (fds[1].revents != 0) throw TransportError("stopped");
    if (rc > 0 && fds[0].revents != 0) return;  // ready, or an error the next call reports
  }
}

BrokerConnection::Wait BrokerConnection::WaitReadable(Clock::time_point deadline) {
  if (tls_ && SSL_pending(tls_->session.get()) > 0) return Wait::kReadable;
  const auto left = std::max<std::int64_t>(
      0, std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count());
  const short events = POLLIN | (read_wants_write_ ? POLLOUT : 0);
  pollfd fds[] = {{socket_.fd, events, 0}, {wakeup_.fd(), POLLIN, 0}};
  const int rc = ::poll(fds, 2, static_cast<int>(left));
  if (rc < 0 && errno != EINTR) throw TransportError("poll: " + ErrnoText(errno));
  if (fds[1].revents != 0) return Wait::kWakeup;
  return rc > 0 && fds[0].revents != 0 ? Wait::kReadable : Wait::kTimeout;
}

std::size_t BrokerConnection::ReadSome(std::span<char> space) {
  if (!tls_) {
    const ssize_t n = ::recv(socket_.fd, space.data(), space.size(), 0);
    if (n > 0) return static_cast<std::size_t>(n);
    if (n == 0) throw TransportError("the broker closed the connection");
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    throw TransportError(ErrnoText(errno));
  }
  // One SSL_read returns at most one TLS record (16 KiB): take every record already here.
  SSL* ssl = tls_->session.get();
  read_wants_write_ = false;
  std::size_t total = 0;
  while (total < space.size()) {
    ERR_clear_error();
    const int n = SSL_read(ssl, space.data() + total, static_cast<int>(space.size() - total));
    if (n > 0) {
      total += static_cast<std::size_t>(n);
      continue;
    }
    const int error = SSL_get_error(ssl, n);
    // Bytes already decrypted are handed out first; a close or an error is seen by the next call.
    if (total > 0 && error != SSL_ERROR_WANT_WRITE) return total;
    switch (error) {
      case SSL_ERROR_WANT_READ:
        return total;
      case SSL_ERROR_WANT_WRITE:
        read_wants_write_ = true;
        return total;
      case SSL_ERROR_ZERO_RETURN:
        throw TransportError("the broker closed the connection");
      case SSL_ERROR_SYSCALL:
        throw TransportError(errno != 0 ? ErrnoText(errno) : "the broker closed the connection");
      default:
        throw TransportError("TLS: " + OpenSslError());
    }
  }
  return total;
}

void BrokerConnection::WriteAll(std::string_view bytes, Clock::time_point deadline) {
  while (!bytes.empty()) {
    if (!tls_) {
      const ssize_t n = ::send(socket_.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        WaitFor(POLLOUT, deadline, "writing to the broker");
      } else if (errno != EINTR) {
        throw TransportError(ErrnoText(errno));
      }
      continue;
    }
    SSL* ssl = tls_->session.get();
    ERR_clear_error();
    // A retried SSL_write must pass the same bytes, which it does: `bytes` only moves on success.
    const int n = SSL_write(ssl, bytes.data(), static_cast<int>(bytes.size()));
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    switch (SSL_get_error(ssl, n)) {
      case SSL_ERROR_WANT_WRITE:
        WaitFor(POLLOUT, deadline, "writing to the broker");
        break;
      case SSL_ERROR_WANT_READ:
        WaitFor(POLLIN, deadline, "writing to the broker");
        break;
      case SSL_ERROR_SYSCALL:
        throw TransportError(errno != 0 ? ErrnoText(errno) : "the broker closed the connection");
      default:
        throw TransportError("TLS: " + OpenSslError());
    }
  }
}

}  // namespace billing::exporter::mqtt
