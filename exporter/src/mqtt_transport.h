// I/O half of the MQTT collector's client: one non-blocking TCP connection to the broker, TLS
// (OpenSSL) for ssl:// and mqtts:// addresses, every wait bounded by a deadline and interruptible
// by a Wakeup, so that stopping the exporter never waits on the network.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace billing::exporter::mqtt {

/// The connection failed or was closed; what() says why, without secrets.
struct TransportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// An eventfd another thread signals to interrupt every wait of a connection.
class Wakeup {
 public:
  Wakeup();
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;
  void Signal();
  /// Waits up to `timeout`; true if the wakeup was signalled (now or before).
  bool WaitFor(std::chrono::milliseconds timeout) const;
  int fd() const { return fd_; }

 private:
  int fd_;
};

struct BrokerAddress {
  bool tls = false;
  std::string host;  // without the brackets of an IPv6 literal
  std::uint16_t port = 0;
};

/// tcp://, mqtt://, ssl:// and mqtts:// with a host and a port (ValidateMqttUrl's syntax). Throws
/// std::invalid_argument for anything else.
BrokerAddress ParseBrokerUrl(const std::string& url);

class BrokerConnection {
 public:
  using Clock = std::chrono::steady_clock;

  /// Connects, and for TLS completes a handshake that verifies the broker's certificate (against
  /// `ca_file`, or the system's CAs when it is empty) and its host name or IP address. Throws
  /// TransportError on failure or when `wakeup` is signalled.
  BrokerConnection(const BrokerAddress& address, const std::string& ca_file,
                   Clock::time_point deadline, const Wakeup& wakeup);
  ~BrokerConnection();
  BrokerConnection(const BrokerConnection&) = delete;
  BrokerConnection& operator=(const BrokerConnection&) = delete;

  enum class Wait { kReadable, kTimeout, kWakeup };
  /// Waits until bytes can be read, `deadline` passes or the wakeup is signalled.
  Wait WaitReadable(Clock::time_point deadline);
  /// Reads what has arrived into `space`: the number of bytes, 0 when nothing is available yet.
  /// Throws TransportError when the broker closed the connection or it failed.
  std::size_t ReadSome(std::span<char> space);
  /// Writes all of `bytes` by `deadline`; throws TransportError otherwise.
  void WriteAll(std::string_view bytes, Clock::time_point deadline);

 private:
  struct Tls;  // OpenSSL's context and session; absent for plain TCP
  struct Socket {
    int fd = -1;
    ~Socket();
  };
  void Connect(const BrokerAddress& address, Clock::time_point deadline);
  void Handshake(const BrokerAddress& address, const std::string& ca_file,
                 Clock::time_point deadline);
  // Waits for `events` on the socket; throws TransportError naming `what` when the deadline passes
  // or the wakeup comes first.
  void WaitFor(short events, Clock::time_point deadline, const char* what);

  const Wakeup& wakeup_;
  Socket socket_;
  std::unique_ptr<Tls> tls_;       // after socket_: destroyed first
  bool read_wants_write_ = false;  // TLS: the last read needs the socket writable to go on
};

}  // namespace billing::exporter::mqtt
