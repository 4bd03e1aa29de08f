// A stand-in for billing-exporter, used only by testbed_test so that ExporterProcess can be tested
// without depending on the real exporter. Serves GET /healthz and GET /metrics on
// `--listen 127.0.0.1:PORT` until SIGTERM or SIGINT, then exits 0. /metrics reports the number of
// extra arguments and the value of $FAKE_EXPORTER_VALUE, so the test can check both were passed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

volatile sig_atomic_t g_stop = 0;

void OnSignal(int) { g_stop = 1; }

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Respond(int fd, const std::string& status, const std::string& body) {
  const std::string response = "HTTP/1.1 " + status +
                               "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  std::size_t sent = 0;
  while (sent < response.size()) {
    const ssize_t n = send(fd, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<std::size_t>(n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen_address;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--listen") == 0) listen_address = argv[i + 1];
  }
  const auto colon = listen_address.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "fake_exporter: --listen HOST:PORT is required\n");
    return 2;
  }
  const std::string host = listen_address.substr(0, colon);
  const int port = std::atoi(listen_address.c_str() + colon + 1);
  const int extra_args = argc - 3;
  const char* env_value = std::getenv("FAKE_EXPORTER_VALUE");
  const std::string metrics =
      "# HELP fake_up Always 1.\n"
      "# TYPE fake_up gauge\n"
      "fake_up 1\n"
      "fake_extra_args " +
      std::to_string(extra_args) + "\nfake_env{value=\"" +
      EscapeLabelValue(env_value != nullptr ? env_value : "") + "\"} 1\n";

  struct sigaction action {};
  action.sa_handler = OnSignal;  // no SA_RESTART: poll() returns EINTR and the loop ends
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);

  const int server = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
      bind(server, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(server, 16) != 0) {
    std::fprintf(stderr, "fake_exporter: cannot listen on %s: %s\n", listen_address.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "fake_exporter: listening on %s\n", listen_address.c_str());

  while (!g_stop) {
    // A bounded wait, so a signal arriving just before poll() delays the exit by at most 200 ms.
    pollfd pfd{server, POLLIN, 0};
    if (poll(&pfd, 1, 200) <= 0) continue;
    const int client = accept(server, nullptr, nullptr);
    if (client < 0) continue;
    std::string request;
    char buffer[4096];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 65536) {
      const ssize_t n = recv(client, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      request.append(buffer, static_cast<std::size_t>(n));
    }
    if (request.rfind("GET /healthz ", 0) == 0) {
      Respond(client, "200 OK", "ok\n");
    } else if (request.rfind("GET /metrics ", 0) == 0) {
      Respond(client, "200 OK", metrics);
    } else {
      Respond(client, "404 Not Found", "not found\n");
    }
    close(client);
  }
  close(server);
  std::fprintf(stderr, "fake_exporter: stopped\n");
  return 0;
}
