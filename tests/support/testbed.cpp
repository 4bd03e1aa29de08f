#include "testbed.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <grp.h>
#include <locale.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>

extern char** environ;

namespace billing::testbed {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// How long a server may take to come up before we give up and show its log.
constexpr milliseconds kStartTimeout = seconds(30);
// How much of a server's log goes into an exception message.
constexpr std::size_t kLogTail = 2000;
// How often a freshly chosen port may turn out to be taken before a server gives up.
constexpr int kPortAttempts = 5;

constexpr char kPgBinDir[] = "/usr/lib/postgresql/15/bin";

// Thrown (internally) when a server exited because its port was taken between FreePort() and bind,
// so the caller can retry on another port.
class PortInUseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Calls `start(port)` with a free port, and again with another one while the port turns out to
// have been taken in the meantime (at most kPortAttempts times).
template <typename Start>
void OnFreePort(Start start) {
  for (int attempt = 1;; ++attempt) {
    try {
      start(FreePort());
      return;
    } catch (const PortInUseError&) {
      if (attempt == kPortAttempts) throw;
    }
  }
}

std::string ErrnoMessage(const std::string& what) { return what + ": " + std::strerror(errno); }

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// The child dup2()s its descriptors onto 0, 1 and 2; if one of them already were 0..2 (because the
// test runner was started with a closed stdio), that dup2 would clobber another. Move them up.
Fd AboveStdio(Fd fd, const std::string& what) {
  if (fd.get() < 0) throw std::runtime_error(ErrnoMessage(what));
  if (fd.get() > 2) return fd;
  Fd moved(fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
  if (moved.get() < 0) throw std::runtime_error(ErrnoMessage(what + " (F_DUPFD)"));
  return moved;
}

std::string ReadFile(const fs::path& path, std::uintmax_t offset = 0) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(static_cast<std::streamoff>(offset));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::uintmax_t FileSize(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

std::string Tail(const std::string& text, std::size_t bytes = kLogTail) {
  return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

bool ContainsNoCase(std::string_view haystack, std::string_view needle) {
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                        [](char a, char b) {
                          return std::tolower(static_cast<unsigned char>(a)) ==
                                 std::tolower(static_cast<unsigned char>(b));
                        });
  return it != haystack.end();
}

std::string RandomHex(std::size_t length) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::random_device device;
  std::string out;
  for (std::size_t i = 0; i < length; ++i) out += kDigits[device() % 16];
  return out;
}

bool TcpConnects(int port) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  return connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

// The first candidate that exists, else the bare name for a PATH search: some binaries live in
// sbin, which is not on a non-root user's PATH on Debian.
std::string FindProgram(const std::string& absolute, const std::string& name) {
  return access(absolute.c_str(), X_OK) == 0 ? absolute : name;
}

struct UserInfo {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::string home;
};

// Looked up in the parent: getpwnam and friends are not async-signal-safe, so the child after fork
// may only call the plain setgroups/setgid/setuid system calls with these numbers.
UserInfo LookupUser(const std::string& name) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(size > 0 ? static_cast<std::size_t>(size) : 16384);
  passwd entry{};
  passwd* result = nullptr;
  const int rc = getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &result);
  if (rc != 0 || result == nullptr) throw std::runtime_error("no such user '" + name + "'");
  UserInfo info{name, entry.pw_uid, entry.pw_gid, {}, entry.pw_dir ? entry.pw_dir : "/"};
  int count = 16;
  for (;;) {
    info.groups.resize(static_cast<std::size_t>(count));
    int n = count;
    if (getgrouplist(name.c_str(), info.gid, info.groups.data(), &n) >= 0) {
      info.groups.resize(static_cast<std::size_t>(n));
      break;
    }
    count = std::max(n, count * 2);
  }
  return info;
}

void Chown(const fs::path& path, const UserInfo& user) {
  if (chown(path.c_str(), user.uid, user.gid) != 0) {
    throw std::runtime_error(ErrnoMessage("chown " + path.string()));
  }
}

// When the server runs as another user, every ancestor of its directory must be searchable by that
// user; a TMPDIR under /root is not, and the server's own error would be obscure.
void CheckSearchableBy(const fs::path& dir, const UserInfo& user) {
  for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (stat(p.c_str(), &st) != 0) throw std::runtime_error(ErrnoMessage("stat " + p.string()));
    bool ok = (st.st_mode & S_IXOTH) != 0;
    if (st.st_uid == user.uid) ok = (st.st_mode & S_IXUSR) != 0;
    if (!ok && std::find(user.groups.begin(), user.groups.end(), st.st_gid) != user.groups.end()) {
      ok = (st.st_mode & S_IXGRP) != 0;
    }
    if (!ok) {
      throw std::runtime_error("user '" + user.name + "' cannot reach " + dir.string() + " (" +
                               p.string() + " is not searchable); set TMPDIR to e.g. /tmp");
    }
    if (p == p.root_path()) break;
  }
}

// waitpid() status meaning "unknown": someone else reaped the child.
constexpr int kUnknownStatus = -1;

int ExitCodeFromStatus(int status) {
  if (status == kUnknownStatus) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Reaps `pid` once it exits; nullopt if `deadline` passes first. Polls with a short, growing delay
// so a quick exit is noticed quickly without spinning.
std::optional<int> ReapBefore(pid_t pid, Clock::time_point deadline) {
  milliseconds delay(1);
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return kUnknownStatus;
    const auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::min<Clock::duration>(delay, deadline - now));
    delay = std::min(delay * 2, milliseconds(20));
  }
}

int ReapBlocking(pid_t pid) {
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, 0);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return kUnknownStatus;
  }
}

// What the child reports through the exec pipe when a step before exec fails.
struct ChildFailure {
  int step;
  int error;
};
constexpr const char* kChildSteps[] = {
    "redirecting stdio", "setgroups", "setgid", "setuid", "chdir", "exec"};

// Everything the child needs, prepared before fork: between fork and exec only async-signal-safe
// calls are allowed (the test runner may have other threads holding malloc or stdio locks).
struct ChildPlan {
  const char* program = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  int stdin_fd = -1;
  int log_fd = -1;
  int report_fd = -1;
  int max_fd = 0;
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  std::size_t group_count = 0;
  struct sigaction default_action {};
  sigset_t empty_mask{};
};

[[noreturn]] void ChildFail(const ChildPlan& plan, int step) {
  const ChildFailure failure{step, errno};
  // Nothing useful to do if the report cannot be written: the exit code still says it failed.
  [[maybe_unused]] const ssize_t written = write(plan.report_fd, &failure, sizeof failure);
  _exit(127);
}

[[noreturn]] void RunChild(const ChildPlan& plan) {
  // Own process group: a signal aimed at the child's group never reaches the test runner, and the
  // terminal's Ctrl-C does not reach the child behind the harness's back.
  setpgid(0, 0);
  // Ignored signals and the signal mask survive exec; the child must start from the defaults.
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &plan.default_action, nullptr);
  sigprocmask(SIG_SETMASK, &plan.empty_mask, nullptr);

  if (dup2(plan.stdin_fd, STDIN_FILENO) < 0 || dup2(plan.log_fd, STDOUT_FILENO) < 0 ||
      dup2(plan.log_fd, STDERR_FILENO) < 0) {
    ChildFail(plan, 0);
  }
  if (plan.switch_user) {
    if (setgroups(plan.group_count, plan.groups) != 0) ChildFail(plan, 1);
    if (setgid(plan.gid) != 0) ChildFail(plan, 2);
    if (setuid(plan.uid) != 0) ChildFail(plan, 3);
    // The inherited working directory (e.g. /root) is typically unreadable for the new user, and
    // PostgreSQL refuses to start when it cannot resolve its working directory.
    if (chdir("/") != 0) ChildFail(plan, 4);
  }
  // Do not leak the harness's descriptors (listening sockets, other servers' logs) into the child;
  // keep only the report pipe, which is close-on-exec.
  const unsigned report = static_cast<unsigned>(plan.report_fd);
  bool closed = true;
  if (report > 3 && close_range(3, report - 1, 0) != 0) closed = false;
  if (closed && close_range(report + 1, ~0U, 0) != 0) closed = false;
  if (!closed) {
    for (int fd = 3; fd < plan.max_fd; ++fd) {
      if (fd != plan.report_fd) close(fd);
    }
  }
  execve(plan.program, plan.argv, plan.envp);
  ChildFail(plan, 5);
}

// execvp's search, done in the parent so that a missing program is an exception, not exit 127.
std::string ResolveProgram(const std::string& name, const std::string& path_var) {
  if (name.find('/') != std::string::npos) return name;
  std::string_view rest = path_var;
  for (;;) {
    const auto colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  throw std::runtime_error("Process: program '" + name + "' not found in PATH=" + path_var);
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct CurlListDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct CurlFreeDeleter {
  void operator()(char* text) const { curl_free(text); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

CurlHandle NewCurl() {
  // curl_global_init is not thread-safe; a function-local static runs it exactly once.
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (init != CURLE_OK) {
    throw std::runtime_error(std::string("curl_global_init: ") + curl_easy_strerror(init));
  }
  CurlHandle curl(curl_easy_init());
  if (!curl) throw std::runtime_error("curl_easy_init failed");
  return curl;
}

std::size_t AppendBody(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

std::string TrimSpace(std::string_view text) {
  const auto begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return "";
  const auto end = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(begin, end - begin + 1));
}

std::size_t AppendHeader(char* data, std::size_t size, std::size_t count, void* user) {
  auto& headers = *static_cast<std::map<std::string, std::string>*>(user);
  const std::string_view line(data, size * count);
  // A new status line (after "100 Continue") starts a new header block.
  if (line.rfind("HTTP/", 0) == 0) {
    headers.clear();
  } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string value = TrimSpace(line.substr(colon + 1));
    auto [it, inserted] = headers.emplace(std::move(name), value);
    if (!inserted) it->second += ", " + value;  // repeated headers combine as in RFC 9110
  }
  return size * count;
}

// Environment for the PostgreSQL tools: the caller's PG* variables must not redirect them.
const std::vector<std::string>& PgUnsetEnv() {
  static const std::vector<std::string> names = {
      "PGHOST",       "PGHOSTADDR",        "PGPORT",
      "PGUSER",       "PGPASSWORD",        "PGPASSFILE",
      "PGDATABASE",   "PGSERVICE",         "PGSERVICEFILE",
      "PGOPTIONS",    "PGSSLMODE",         "PGDATA",
      "PGSYSCONFDIR", "PGCONNECT_TIMEOUT", "PGTARGETSESSIONATTRS",
      "PGAPPNAME",    "PGREQUIRESSL",      "PGGSSENCMODE"};
  return names;
}

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string QuoteIdentifier(const std::string& name) {
  std::string out = "\"";
  for (const char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string YamlQuote(const std::string& text) {
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// Runs a process to completion, its output in options.log_path (a private temp file if empty).
CommandResult RunToCompletion(Process::Options options, milliseconds timeout) {
  std::optional<TempDir> dir;
  if (options.log_path.empty()) {
    dir.emplace("billing-cmd");
    options.log_path = dir->path() / "output.log";
  }
  Process process(std::move(options));
  CommandResult result;
  if (const auto code = process.Wait(timeout)) {
    result.exit_code = *code;
    result.output = process.Log();
  } else {
    kill(-process.pid(), SIGKILL);  // the whole group: a shell's children would outlive it
    process.Stop(SIGKILL, seconds(5));
    result.exit_code = -1;
    result.output =
        process.Log() + "\n[timed out after " + std::to_string(timeout.count()) + " ms]";
  }
  return result;
}

// Starts a server and waits until `ready()` holds. Throws PortInUseError if it exited complaining
// about its address, std::runtime_error with the tail of its log on any other failure.
std::unique_ptr<Process> StartServer(Process::Options options, const std::string& what,
                                     const std::function<bool()>& ready) {
  const fs::path log_path = options.log_path;
  // The log is appended across restarts; only this run's part explains this run's failure.
  const std::uintmax_t log_offset = FileSize(log_path);
  auto process = std::make_unique<Process>(std::move(options));
  bool exited = false;
  const bool up = WaitFor(
      [&] {
        if (!process->Running()) return exited = true;
        return ready();
      },
      kStartTimeout, milliseconds(100));
  if (up && !exited) return process;

  std::string reason;
  if (exited) {
    reason = "exited with code " + std::to_string(process->Wait(milliseconds(0)).value_or(-1));
  } else {
    reason = "did not become ready within " +
             std::to_string(std::chrono::duration_cast<seconds>(kStartTimeout).count()) + " s";
    process->Stop(SIGTERM, seconds(5));
  }
  const std::string log = ReadFile(log_path, log_offset);
  const std::string message =
      what + " " + reason + "; log " + log_path.string() + ":\n" + Tail(log);
  if (exited && ContainsNoCase(log, "address already in use")) throw PortInUseError(message);
  throw std::runtime_error(message);
}

// Parses one line of the text exposition format.
class LineParser {
 public:
  LineParser(std::string_view line, std::size_t line_number)
      : line_(line), line_number_(line_number) {}

  // Appends the line's sample, if it has one, to `out`.
  void Parse(std::vector<MetricSample>& out) {
    SkipBlanks();
    if (AtEnd() || Peek() == '#') return;
    MetricSample sample;
    sample.name = Name(/*allow_colon=*/true);
    if (sample.name.empty()) Fail("expected a metric name");
    if (!AtEnd() && Peek() != ' ' && Peek() != '\t' && Peek() != '{') {
      Fail("invalid character in the metric name");
    }
    SkipBlanks();
    if (!AtEnd() && Peek() == '{') ParseLabels(sample.labels);
    SkipBlanks();
    sample.value = ParseValue(Token());
    SkipBlanks();
    if (!AtEnd()) {
      const std::string_view timestamp = Token();
      std::int64_t ms = 0;
      const auto [end, ec] =
          std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ms);
      if (ec != std::errc() || end != timestamp.data() + timestamp.size()) {
        Fail("invalid timestamp '" + std::string(timestamp) + "'");
      }
      SkipBlanks();
      if (!AtEnd()) Fail("unexpected text after the timestamp");
    }
    out.push_back(std::move(sample));
  }

 private:
  bool AtEnd() const { return pos_ >= line_.size(); }
  char Peek() const { return line_[pos_]; }
  void SkipBlanks() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t')) ++pos_;
  }

  [[noreturn]] void Fail(const std::string& reason) const {
    throw std::runtime_error("ParseMetricsText: line " + std::to_string(line_number_) + ": " +
                             reason + ": " + std::string(line_));
  }

  std::string Name(bool allow_colon) {
    const std::size_t start = pos_;
    while (!AtEnd()) {
      const unsigned char c = static_cast<unsigned char>(Peek());
      const bool ok = std::isalpha(c) || c == '_' || (allow_colon && c == ':') ||
                      (pos_ > start && std::isdigit(c));
      if (!ok) break;
      ++pos_;
    }
    return std::string(line_.substr(start, pos_ - start));
  }

  void Expect(char c) {
    if (AtEnd() || Peek() != c) Fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  void ParseLabels(std::map<std::string, std::string>& labels) {
    Expect('{');
    SkipBlanks();
    while (AtEnd() || Peek() != '}') {
      std::string name = Name(/*allow_colon=*/false);
      if (name.empty()) Fail("expected a label name");
      SkipBlanks();
      Expect('=');
      SkipBlanks();
      Expect('"');
      std::string value;
      for (;;) {
        if (AtEnd()) Fail("unterminated label value");
        const char c = line_[pos_++];
        if (c == '"') break;
        if (c != '\\') {
          value += c;
          continue;
        }
        if (AtEnd()) Fail("unterminated label value");
        const char escaped = line_[pos_++];
        if (escaped == '\\' || escaped == '"') {
          value += escaped;
        } else if (escaped == 'n') {
          value += '\n';
        } else {
          Fail(std::string("invalid escape sequence '\\") + escaped + "' in a label value");
        }
      }
      if (!labels.emplace(name, std::move(value)).second) Fail("duplicate label '" + name + "'");
      SkipBlanks();
      if (!AtEnd() && Peek() == ',') {
        ++pos_;
        SkipBlanks();
      } else if (AtEnd() || Peek() != '}') {
        Fail("expected ',' or '}' after a label");
      }
    }
    ++pos_;  // '}'
  }

  std::string_view Token() {
    const std::size_t start = pos_;
    while (!AtEnd() && Peek() != ' ' && Peek() != '\t') ++pos_;
    return line_.substr(start, pos_ - start);
  }

  double ParseValue(std::string_view token) const {
    if (token.empty()) Fail("missing value");
    // strtod in the "C" locale whatever the process locale is: a decimal comma must not creep in.
    static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", nullptr);
    const std::string text(token);
    char* end = nullptr;
    const double value = strtod_l(text.c_str(), &end, c_locale);
    if (end != text.c_str() + text.size()) Fail("invalid value '" + text + "'");
    return value;
  }

  std::string_view line_;
  std::size_t line_number_;
  std::size_t pos_ = 0;
};

bool LabelsInclude(const MetricSample& sample, const std::map<std::string, std::string>& labels) {
  return std::all_of(labels.begin(), labels.end(), [&](const auto& label) {
    const auto it = sample.labels.find(label.first);
    return it != sample.labels.end() && it->second == label.second;
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Small utilities

long ProcStatusKib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(field + ":")) return std::stol(line.substr(field.size() + 1));
  }
  return 0;
}

int FreePort() {
  // The kernel may hand out the same ephemeral port to two quick bind(0) calls in a row; two
  // servers of one test would then race for it. Remember recent answers and skip them.
  static std::mutex mutex;
  static std::deque<int> recent;
  const std::lock_guard lock(mutex);
  for (int attempt = 0; attempt < 100; ++attempt) {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) throw std::runtime_error(ErrnoMessage("FreePort: socket"));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error(ErrnoMessage("FreePort: bind"));
    }
    socklen_t length = sizeof addr;
    if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      throw std::runtime_error(ErrnoMessage("FreePort: getsockname"));
    }
    const int port = ntohs(addr.sin_port);
    if (std::find(recent.begin(), recent.end(), port) != recent.end()) continue;
    recent.push_back(port);
    if (recent.size() > 256) recent.pop_front();
    return port;
  }
  throw std::runtime_error("FreePort: no fresh port after 100 attempts");
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
             std::chrono::milliseconds poll) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    // The last sleep ends at the deadline so that the condition gets one final look.
    std::this_thread::sleep_for(std::min<Clock::duration>(poll, deadline - now));
  }
}

TempDir::TempDir(const std::string& prefix) {
  const char* tmpdir = std::getenv("TMPDIR");
  const fs::path base = (tmpdir != nullptr && *tmpdir != '\0') ? tmpdir : "/tmp";
  std::string pattern = (base / (prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error(ErrnoMessage("TempDir: mkdtemp " + pattern));
  }
  // Absolute, because a child that runs as another user starts in "/".
  path_ = fs::absolute(pattern);
}

TempDir::~TempDir() {
  std::error_code ignored;  // a destructor cannot report; leftovers in $TMPDIR are harmless
  fs::remove_all(path_, ignored);
}

// ---------------------------------------------------------------------------------------------
// Process

Process::Process(Options options) : options_(std::move(options)) {
  if (options_.argv.empty()) throw std::runtime_error("Process: empty argv");
  if (options_.log_path.empty()) throw std::runtime_error("Process: log_path is required");

  std::optional<UserInfo> user;
  if (options_.run_as_user) user = LookupUser(*options_.run_as_user);

  // The child's environment: inherited, minus removals and overrides, plus additions.
  std::set<std::string> replaced(options_.unset_env.begin(), options_.unset_env.end());
  std::vector<std::pair<std::string, std::string>> additions = options_.env;
  if (user) {
    // Tools look at HOME (e.g. ~/.psqlrc); root's home is not readable by the new user.
    for (const auto& [name, value] : {std::pair<std::string, std::string>{"HOME", user->home},
                                      {"USER", user->name},
                                      {"LOGNAME", user->name}}) {
      const bool explicit_value =
          replaced.count(name) != 0 ||
          std::any_of(additions.begin(), additions.end(),
                      [&name = name](const auto& kv) { return kv.first == name; });
      if (!explicit_value) additions.emplace_back(name, value);
    }
  }
  for (const auto& kv : additions) replaced.insert(kv.first);
  std::vector<std::string> env_strings;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (replaced.count(std::string(text.substr(0, text.find('=')))) == 0) {
      env_strings.emplace_back(text);
    }
  }
  std::string path_var = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& entry : env_strings) {
    if (entry.rfind("PATH=", 0) == 0) path_var = entry.substr(5);
  }
  for (const auto& [name, value] : additions) {
    env_strings.push_back(name + "=" + value);
    if (name == "PATH") path_var = value;
  }
  const std::string program = ResolveProgram(options_.argv[0], path_var);

  std::vector<char*> argv;
  for (auto& arg : options_.argv) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);

  const Fd log_fd = AboveStdio(
      Fd(open(options_.log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)),
      "Process: open " + options_.log_path.string());
  const Fd stdin_fd = AboveStdio(Fd(open("/dev/null", O_RDONLY | O_CLOEXEC)), "open /dev/null");
  // The exec pipe: close-on-exec, so EOF means exec succeeded; anything else is a ChildFailure.
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error(ErrnoMessage("Process: pipe2"));
  Fd report_read(pipe_fds[0]);
  Fd report_write = AboveStdio(Fd(pipe_fds[1]), "Process: pipe2");

  ChildPlan plan;
  plan.program = program.c_str();
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.stdin_fd = stdin_fd.get();
  plan.log_fd = log_fd.get();
  plan.report_fd = report_write.get();
  rlimit limit{};
  plan.max_fd = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                    ? static_cast<int>(std::min<rlim_t>(limit.rlim_cur, 1 << 20))
                    : 65536;
  if (user) {
    plan.switch_user = true;
    plan.uid = user->uid;
    plan.gid = user->gid;
    plan.groups = user->groups.data();
    plan.group_count = user->groups.size();
  }
  plan.default_action.sa_handler = SIG_DFL;
  sigemptyset(&plan.default_action.sa_mask);
  sigemptyset(&plan.empty_mask);

  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(ErrnoMessage("Process: fork"));
  if (pid == 0) RunChild(plan);

  // Also set the group from the parent, so that it holds before we return whatever the scheduling;
  // it fails harmlessly if the child has already exec'd.
  setpgid(pid, pid);
  report_write.Reset();
  ChildFailure failure{};
  ssize_t n = 0;
  do {
    n = read(report_read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    ReapBlocking(pid);
    const int step = std::clamp(failure.step, 0, 5);
    throw std::runtime_error("Process: cannot start " + program + ": " + kChildSteps[step] + ": " +
                             std::strerror(failure.error));
  }
  pid_ = pid;
}

Process::~Process() {
  if (pid_ <= 0 || exit_status_) return;
  // The whole group: helpers the child started die with it. Safe because the unreaped child keeps
  // its PID (and so the group ID) from being reused.
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);
  ReapBlocking(pid_);
}

bool Process::Running() {
  if (exit_status_) return false;
  if (const auto status = ReapBefore(pid_, Clock::now())) {
    exit_status_ = *status;
    return false;
  }
  return true;
}

int Process::Stop(int signal, std::chrono::milliseconds timeout) {
  if (exit_status_) return -1;
  // Reap first if it already exited: never signal a PID that is no longer ours.
  if (Running()) {
    kill(pid_, signal);
    if (const auto status = ReapBefore(pid_, Clock::now() + timeout)) {
      exit_status_ = *status;
    } else {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      exit_status_ = ReapBlocking(pid_);
    }
  }
  return *exit_status_;
}

std::optional<int> Process::Wait(std::chrono::milliseconds timeout) {
  if (!exit_status_) {
    const auto status = ReapBefore(pid_, Clock::now() + timeout);
    if (!status) return std::nullopt;
    exit_status_ = *status;
  }
  return ExitCodeFromStatus(*exit_status_);
}

std::string Process::Log() const { return ReadFile(options_.log_path); }

CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::pair<std::string, std::string>>& env,
                         std::chrono::milliseconds timeout) {
  Process::Options options;
  options.argv = argv;
  options.env = env;
  return RunToCompletion(std::move(options), timeout);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

PostgresServer::PostgresServer() : dir_(std::make_unique<TempDir>("billing-pg")) {
  const fs::path& dir = dir_->path();
  const bool as_root = geteuid() == 0;
  std::optional<UserInfo> postgres;
  if (as_root) {
    // initdb and postgres refuse to run as root; they run as the postgres system user, which must
    // own the cluster directory and be able to reach it.
    postgres = LookupUser("postgres");
    CheckSearchableBy(dir.parent_path(), *postgres);
    Chown(dir, *postgres);
  }
  const fs::path socket_dir = dir / "sock";
  fs::create_directory(socket_dir);
  if (postgres) Chown(socket_dir, *postgres);

  password_ = RandomHex(32);
  const fs::path pwfile = dir / "pwfile";
  WriteFile(pwfile, password_ + "\n");
  fs::permissions(pwfile, fs::perms::owner_read | fs::perms::owner_write);
  if (postgres) Chown(pwfile, *postgres);

  Process::Options initdb;
  initdb.argv = {std::string(kPgBinDir) + "/initdb",
                 "-D",
                 (dir / "data").string(),
                 "-U",
                 user_,
                 "--auth-local=trust",
                 "--auth-host=scram-sha-256",
                 "--pwfile=" + pwfile.string(),
                 "--encoding=UTF8",
                 "--locale=C",
                 "--no-sync",  // a throw-away cluster needs no durability
                 "--no-instructions"};
  initdb.env = {{"LC_ALL", "C"}};
  initdb.unset_env = PgUnsetEnv();
  initdb.log_path = dir / "initdb.log";
  if (as_root) initdb.run_as_user = "postgres";
  const CommandResult result = RunToCompletion(std::move(initdb), seconds(120));
  fs::remove(pwfile);
  if (result.exit_code != 0) {
    throw std::runtime_error("PostgresServer: initdb failed with code " +
                             std::to_string(result.exit_code) + ":\n" + Tail(result.output));
  }

  OnFreePort([&](int port) {
    port_ = port;
    Start();
  });
}

PostgresServer::~PostgresServer() {
  // A fast shutdown rather than the Process destructor's SIGKILL: a killed postmaster leaves its
  // System V shared memory segment behind.
  try {
    Stop();
  } catch (...) {
  }
}

std::string PostgresServer::Url(const std::string& database) const {
  return "postgresql://" + user_ + ":" + password_ + "@127.0.0.1:" + std::to_string(port_) + "/" +
         PercentEncode(database);
}

void PostgresServer::Stop() {
  if (!process_) return;
  // SIGINT is PostgreSQL's fast shutdown: abort sessions, checkpoint, exit.
  process_->Stop(SIGINT, seconds(30));
  process_.reset();
}

namespace {
// The pids of `root` and of every process below it, from /proc (parents before children).
std::vector<pid_t> ProcessTree(pid_t root) {
  std::map<pid_t, std::vector<pid_t>> children;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; ppid follows the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    std::string state;
    pid_t parent = 0;
    rest >> state >> parent;
    children[parent].push_back(static_cast<pid_t>(std::stoi(name)));
  }
  std::vector<pid_t> tree = {root};
  for (std::size_t i = 0; i < tree.size(); ++i) {
    for (const pid_t child : children[tree[i]]) tree.push_back(child);
  }
  return tree;
}
}  // namespace

void PostgresServer::SignalAll(int signal) {
  if (!process_) return;
  for (const pid_t pid : ProcessTree(process_->pid())) ::kill(pid, signal);
  if (signal == SIGKILL) {
    process_->Wait(seconds(10));
    process_.reset();
  }
}

void PostgresServer::Start() {
  if (process_) return;
  const fs::path& dir = dir_->path();
  Process::Options options;
  options.argv = {std::string(kPgBinDir) + "/postgres", "-D", (dir / "data").string(), "-p",
                  std::to_string(port_), "-c", "listen_addresses=127.0.0.1", "-c",
                  "unix_socket_directories=" + (dir / "sock").string(),
                  // Speed over durability, and a small footprint: many clusters may run at once.
                  "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                  "-c", "shared_buffers=16MB", "-c", "max_connections=64", "-c", "huge_pages=off",
                  "-c", "jit=off", "-c", "logging_collector=off", "-c", "log_destination=stderr"};
  options.env = {{"LC_ALL", "C"}};
  options.unset_env = PgUnsetEnv();
  options.log_path = dir / "postgres.log";
  if (geteuid() == 0) options.run_as_user = "postgres";
  const std::string port = std::to_string(port_);
  const std::string pg_isready = std::string(kPgBinDir) + "/pg_isready";
  // pg_isready rather than a bare TCP connect: the port accepts connections while the server is
  // still recovering and refusing logins.
  process_ = StartServer(std::move(options), "PostgreSQL on port " + port, [&] {
    Process::Options check;
    check.argv = {pg_isready, "-q", "-h", "127.0.0.1", "-p", port, "-t", "2"};
    check.unset_env = PgUnsetEnv();
    return RunToCompletion(std::move(check), seconds(10)).exit_code == 0;
  });
  try {
    Psql("select 1");
  } catch (const std::exception& e) {
    const std::string log = ReadFile(dir / "postgres.log");
    Stop();
    throw std::runtime_error("PostgreSQL on port " + port + " is up but psql fails: " + e.what() +
                             "\nserver log:\n" + Tail(log));
  }
}

std::string PostgresServer::Psql(const std::string& sql, const std::string& database) const {
  if (!process_) throw std::runtime_error("PostgresServer::Psql: the server is stopped");
  // The SQL goes through a file rather than -c: psql then runs the statements one by one (so CREATE
  // DATABASE may follow another statement) and stops at the first error.
  static std::atomic<unsigned> counter{0};
  const std::string stem = "psql-" + std::to_string(counter++);
  const fs::path sql_file = dir_->path() / (stem + ".sql");
  const fs::path out_file = dir_->path() / (stem + ".out");
  WriteFile(sql_file, sql);
  Process::Options options;
  options.argv = {std::string(kPgBinDir) + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
                  "-h", (dir_->path() / "sock").string(), "-p", std::to_string(port_), "-U", user_,
                  "-d", database, "-f", sql_file.string(),
                  // Query results to their own file: notices and errors (stderr) stay out of them.
                  "-o", out_file.string()};
  options.env = {{"PGCLIENTENCODING", "UTF8"}};
  options.unset_env = PgUnsetEnv();
  const CommandResult result = RunToCompletion(std::move(options), seconds(120));
  std::string output = ReadFile(out_file);
  std::error_code ignored;
  fs::remove(sql_file, ignored);
  fs::remove(out_file, ignored);
  if (result.exit_code != 0) {
    throw std::runtime_error("psql failed with code " + std::to_string(result.exit_code) +
                             " running:\n" + Tail(sql, 500) + "\n" + Tail(result.output));
  }
  if (!output.empty() && output.back() == '\n') output.pop_back();
  return output;
}

void PostgresServer::CreateDatabase(const std::string& name) const {
  Psql("CREATE DATABASE " + QuoteIdentifier(name));
}

// ---------------------------------------------------------------------------------------------
// Mosquitto

MosquittoServer::MosquittoServer(int sys_interval_seconds, std::string extra_config)
    : dir_(std::make_unique<TempDir>("billing-mqtt")),
      sys_interval_seconds_(sys_interval_seconds),
      extra_config_(std::move(extra_config)) {
  OnFreePort([&](int port) {
    port_ = port;
    Start();
  });
}

MosquittoServer::~MosquittoServer() { Stop(); }

std::string MosquittoServer::Url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

void MosquittoServer::Signal(int signal) {
  if (process_) ::kill(process_->pid(), signal);
}

std::string MosquittoServer::Log() const { return ReadFile(dir_->path() / "mosquitto.log", 0); }

void MosquittoServer::Stop() {
  if (!process_) return;
  process_->Stop(SIGTERM, seconds(20));
  process_.reset();
}

void MosquittoServer::Start() {
  if (process_) return;
  const fs::path& dir = dir_->path();
  const fs::path config = dir / "mosquitto.conf";
  // Read while mosquitto is still root (it then drops to user "mosquitto"), so the private mode of
  // the temp dir does not matter.
  WriteFile(config, "listener " + std::to_string(port_) +
                        " 127.0.0.1\n"
                        "allow_anonymous true\n"
                        "sys_interval " +
                        std::to_string(sys_interval_seconds_) +
                        "\n"
                        "persistence false\n"
                        "log_dest stderr\n"
                        "log_type error\n"
                        "log_type warning\n"
                        "log_type notice\n"
                        "log_type information\n" +
                        extra_config_);
  Process::Options options;
  options.argv = {FindProgram("/usr/sbin/mosquitto", "mosquitto"), "-c", config.string()};
  options.log_path = dir / "mosquitto.log";
  const fs::path log_path = options.log_path;
  const std::uintmax_t log_offset = FileSize(log_path);
  const int port = port_;
  // The "running" line comes after the listener is open; requiring it too means an unrelated
  // process that grabbed the port cannot pass for our broker.
  process_ = StartServer(std::move(options), "Mosquitto on port " + std::to_string(port_), [&] {
    return ReadFile(log_path, log_offset).find(" running") != std::string::npos &&
           TcpConnects(port);
  });
}

// ---------------------------------------------------------------------------------------------
// Prometheus

namespace {

// GET /api/v1/query of the Prometheus query API at `base_url` (`what` names the server in errors).
std::string QueryApi(const std::string& base_url, const std::string& promql,
                     const std::string& what) {
  const CurlHandle curl = NewCurl();
  const std::unique_ptr<char, CurlFreeDeleter> escaped(
      curl_easy_escape(curl.get(), promql.data(), static_cast<int>(promql.size())));
  if (!escaped) throw std::runtime_error("curl_easy_escape failed");
  const HttpResponse response = HttpGet(base_url + "/api/v1/query?query=" + escaped.get());
  // 400 and 422 carry the API's JSON error envelope ("status":"error"), which the caller may want
  // to inspect; anything else is not an answer from the query API.
  if (response.status != 200 && response.status != 400 && response.status != 422) {
    throw std::runtime_error(
        what + " query '" + promql + "' failed: " +
        (response.status == 0 ? response.error : "HTTP " + std::to_string(response.status)) + "\n" +
        Tail(response.body, 500));
  }
  return response.body;
}

}  // namespace

// `extra_config` is appended verbatim to the generated prometheus.yml: top-level keys at column 0
// (e.g. "rule_files: [...]"), or further scrape jobs as "  - job_name: ..." list items.
PrometheusServer::PrometheusServer(const std::vector<std::string>& targets,
                                   std::chrono::seconds scrape_interval,
                                   const std::string& extra_config, const fs::path& tsdb_dir)
    : dir_(std::make_unique<TempDir>("billing-prom")) {
  const fs::path& dir = dir_->path();
  const std::string interval = std::to_string(scrape_interval.count()) + "s";
  std::string target_list;
  for (const auto& target : targets) {
    target_list += (target_list.empty() ? "" : ", ") + YamlQuote(target);
  }
  const fs::path config = dir / "prometheus.yml";
  WriteFile(config,
            "global:\n"
            "  scrape_interval: " +
                interval + "\n" +
                // The timeout may not exceed the interval; the default (10 s) would.
                "  scrape_timeout: " + interval + "\n" + "  evaluation_interval: " + interval +
                "\n" +
                "scrape_configs:\n"
                "  - job_name: billing\n"
                "    static_configs:\n"
                "      - targets: [" +
                target_list + "]\n" + extra_config +
                (extra_config.empty() || extra_config.back() == '\n' ? "" : "\n"));
  OnFreePort([&](int port) {
    port_ = port;
    Process::Options options;
    options.argv = {
        FindProgram("/usr/bin/prometheus", "prometheus"),
        "--config.file=" + config.string(),
        "--storage.tsdb.path=" + (tsdb_dir.empty() ? dir / "data" : tsdb_dir).string(),
        "--storage.tsdb.retention.time=" + std::string(tsdb_dir.empty() ? "15d" : "100y"),
        "--web.listen-address=127.0.0.1:" + std::to_string(port_),
        "--web.enable-admin-api",
        "--log.level=info"};
    options.log_path = dir / "prometheus.log";
    const std::string ready_url = Url() + "/-/ready";
    process_ = StartServer(std::move(options), "Prometheus on port " + std::to_string(port_),
                           [&] { return HttpGet(ready_url, {}, seconds(2)).status == 200; });
  });
}

VictoriaMetricsServer::VictoriaMetricsServer(const std::vector<std::string>& targets,
                                             std::chrono::seconds scrape_interval)
    : dir_(std::make_unique<TempDir>("billing-victoria")) {
  const fs::path& dir = dir_->path();
  const std::string interval = std::to_string(scrape_interval.count()) + "s";
  std::string target_list;
  for (const auto& target : targets) {
    target_list += (target_list.empty() ? "" : ", ") + YamlQuote(target);
  }
  const fs::path config = dir / "scrape.yml";
  WriteFile(config, "global:\n  scrape_interval: " + interval + "\n  scrape_timeout: " + interval +
                        "\nscrape_configs:\n  - job_name: billing\n    static_configs:\n"
                        "      - targets: [" +
                        target_list + "]\n");
  OnFreePort([&](int port) {
    port_ = port;
    Process::Options options;
    options.argv = {FindProgram("/usr/bin/victoria-metrics", "victoria-metrics"),
                    "-storageDataPath=" + (dir / "data").string(),
                    "-httpListenAddr=127.0.0.1:" + std::to_string(port_),
                    // Queries see every sample written, not only those older than 30 s (the
                    // default offset against samples still in flight), and nothing is cached.
                    "-search.latencyOffset=0s", "-search.disableCache"};
    options.log_path = dir / "victoria-metrics.log";
    const std::string health = Url() + "/health";
    store_ = StartServer(std::move(options), "VictoriaMetrics on port " + std::to_string(port_),
                         [&] { return HttpGet(health, {}, seconds(2)).status == 200; });
  });
  OnFreePort([&](int agent_port) {
    Process::Options options;
    options.argv = {FindProgram("/usr/bin/vmagent", "vmagent"),
                    "-promscrape.config=" + config.string(),
                    "-remoteWrite.url=" + Url() + "/api/v1/write",
                    "-remoteWrite.tmpDataPath=" + (dir / "agent-queue").string(),
                    "-remoteWrite.flushInterval=1s",
                    "-httpListenAddr=127.0.0.1:" + std::to_string(agent_port)};
    options.log_path = dir / "vmagent.log";
    const std::string health = "http://127.0.0.1:" + std::to_string(agent_port) + "/health";
    agent_ = StartServer(std::move(options), "vmagent on port " + std::to_string(agent_port),
                         [&] { return HttpGet(health, {}, seconds(2)).status == 200; });
  });
}

VictoriaMetricsServer::~VictoriaMetricsServer() {
  if (agent_) agent_->Stop(SIGTERM, seconds(20));
  if (store_) store_->Stop(SIGTERM, seconds(20));
}

std::string VictoriaMetricsServer::Url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

std::string VictoriaMetricsServer::Query(const std::string& promql) const {
  return QueryApi(Url(), promql, "VictoriaMetrics");
}

SmtpServer::SmtpServer() : dir_(std::make_unique<TempDir>("billing-smtp")) {
  OnFreePort([&](int port) {
    port_ = port;
    Process::Options options;
    // Debian's interpreter: the one on PATH may lack Debian's python3-aiosmtpd.
    options.argv = {"/usr/bin/python3",
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    "127.0.0.1:" + std::to_string(port_),
                    "-c",
                    "aiosmtpd.handlers.Mailbox",
                    (dir_->path() / "maildir").string()};
    options.log_path = dir_->path() / "smtpd.log";
    process_ = StartServer(std::move(options), "aiosmtpd on port " + std::to_string(port_),
                           [port] { return TcpConnects(port); });
  });
}

SmtpServer::~SmtpServer() {
  if (process_) process_->Stop(SIGTERM, seconds(20));
}

std::string SmtpServer::Url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }

std::vector<std::string> SmtpServer::Messages() const {
  const fs::path incoming = dir_->path() / "maildir" / "new";
  std::vector<fs::path> files;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(incoming, error)) files.push_back(entry.path());
  // Maildir names start with the delivery time in seconds, then a per-process sequence.
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    return fs::last_write_time(a) < fs::last_write_time(b) ||
           (fs::last_write_time(a) == fs::last_write_time(b) && a < b);
  });
  std::vector<std::string> messages;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    messages.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return messages;
}

void BackfillOpenMetrics(const std::string& openmetrics, const fs::path& tsdb_dir) {
  fs::create_directories(tsdb_dir);
  const fs::path input = tsdb_dir.parent_path() / (tsdb_dir.filename().string() + ".om.txt");
  WriteFile(input, openmetrics);
  const auto result =
      RunCommand({FindProgram("/usr/bin/promtool", "promtool"), "tsdb", "create-blocks-from",
                  "openmetrics", input.string(), tsdb_dir.string()},
                 {}, std::chrono::seconds(300));
  fs::remove(input);
  if (result.exit_code != 0) {
    throw std::runtime_error("promtool could not backfill " + tsdb_dir.string() + ": " +
                             result.output);
  }
}

PrometheusServer::~PrometheusServer() {
  if (process_) process_->Stop(SIGTERM, seconds(20));
}

std::string PrometheusServer::Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::string PrometheusServer::Query(const std::string& promql) const {
  return QueryApi(Url(), promql, "Prometheus");
}

// ---------------------------------------------------------------------------------------------
// HTTP, gzip, metrics text

HttpResponse HttpGet(const std::string& url, const std::vector<std::string>& request_headers,
                     std::chrono::milliseconds timeout) {
  return HttpRequest("GET", url, "", request_headers, timeout);
}

HttpResponse HttpRequest(const std::string& method, const std::string& url, const std::string& body,
                         const std::vector<std::string>& request_headers,
                         std::chrono::milliseconds timeout) {
  HttpResponse response;
  const CurlHandle curl = NewCurl();
  std::unique_ptr<curl_slist, CurlListDeleter> headers;
  for (const auto& header : request_headers) {
    curl_slist* appended = curl_slist_append(headers.get(), header.c_str());
    if (appended == nullptr) throw std::runtime_error("curl_slist_append failed");
    if (!headers) headers.reset(appended);  // later appends return the same head
  }
  char error[CURL_ERROR_SIZE] = {};
  CURL* handle = curl.get();
  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  curl_easy_setopt(handle, CURLOPT_NOPROXY,
                   "*");  // tests talk to 127.0.0.1 only
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL,
                   1L);  // no SIGALRM tricks in a threaded test runner
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout.count()));
  // Tests check the exporter's compression themselves, so hand back the bytes as sent.
  curl_easy_setopt(handle, CURLOPT_HTTP_CONTENT_DECODING, 0L);
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.get());
  if (method == "HEAD") {
    curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (!body.empty() || (method != "GET" && method != "HEAD" && method != "DELETE")) {
    curl_easy_setopt(handle, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, &AppendHeader);
  curl_easy_setopt(handle, CURLOPT_HEADERDATA, &response.headers);
  const CURLcode rc = curl_easy_perform(handle);
  if (rc != CURLE_OK) {
    response.status = 0;
    response.error = curl_easy_strerror(rc);
    if (error[0] != '\0') response.error += std::string(": ") + error;
    return response;
  }
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

std::string Gunzip(const std::string& compressed) {
  // Owns the zlib stream so that every exit path calls inflateEnd.
  struct Inflater {
    z_stream stream{};
    bool initialized = false;
    ~Inflater() {
      if (initialized) inflateEnd(&stream);
    }
  } inflater;
  z_stream& stream = inflater.stream;
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {  // 16+: gzip wrapper only, not zlib/raw
    throw std::runtime_error("Gunzip: inflateInit2 failed");
  }
  inflater.initialized = true;
  if (compressed.empty()) throw std::runtime_error("Gunzip: empty input is not gzip");
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  std::string out;
  char buffer[16384];
  for (;;) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    const int rc = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - stream.avail_out);
    if (rc == Z_STREAM_END) {
      if (stream.avail_in == 0) return out;
      // RFC 1952 allows several members back to back; their contents concatenate.
      if (inflateReset(&stream) != Z_OK) throw std::runtime_error("Gunzip: inflateReset failed");
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && stream.avail_in == 0) {
      throw std::runtime_error("Gunzip: truncated gzip stream");
    }
    throw std::runtime_error(std::string("Gunzip: invalid gzip data: ") +
                             (stream.msg != nullptr ? stream.msg : "error " + std::to_string(rc)));
  }
}

std::vector<MetricSample> ParseMetricsText(const std::string& text) {
  std::vector<MetricSample> samples;
  std::size_t line_number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    LineParser(line, ++line_number).Parse(samples);
    start = end + 1;
  }
  return samples;
}

std::optional<double> FindValue(const std::vector<MetricSample>& samples, const std::string& name,
                                const std::map<std::string, std::string>& labels) {
  const std::vector<MetricSample> matches = FindAll(samples, name, labels);
  if (matches.empty()) return std::nullopt;
  // Picking one of several silently would make a test pass or fail by exposition order.
  if (matches.size() > 1) {
    throw std::runtime_error("FindValue: " + std::to_string(matches.size()) + " samples named '" +
                             name + "' match the given labels");
  }
  return matches.front().value;
}

std::vector<MetricSample> FindAll(const std::vector<MetricSample>& samples, const std::string& name,
                                  const std::map<std::string, std::string>& labels) {
  std::vector<MetricSample> matches;
  for (const auto& sample : samples) {
    if (sample.name == name && LabelsInclude(sample, labels)) matches.push_back(sample);
  }
  return matches;
}

double Sum(const std::vector<MetricSample>& samples, const std::string& name,
           const std::map<std::string, std::string>& labels) {
  double total = 0;
  for (const auto& sample : FindAll(samples, name, labels)) total += sample.value;
  return total;
}

std::optional<SimulatorSummary> ParseSimulatorSummary(const std::string& output) {
  static const std::regex summary(R"re("messages":(\d+),"payload_bytes":(\d+))re");
  std::smatch m;
  if (!std::regex_search(output, m, summary)) return std::nullopt;
  return SimulatorSummary{std::stol(m[1]), std::stod(m[2])};
}

std::vector<SimulatedDevice> ParseSimulatorDevices(const std::string& output) {
  static const std::regex line(
      R"re("client_id":"([^"]*)","username":"([^"]*)","published":(\d+),"payload":(\d+),"topic":\d+,"units":(\d+),"connected_ms":(\d+))re");
  std::vector<SimulatedDevice> devices;
  for (auto it = std::sregex_iterator(output.begin(), output.end(), line);
       it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    devices.push_back(
        {m[1], m[2], std::stod(m[3]), std::stod(m[4]), std::stod(m[5]), std::stod(m[6]) / 1000});
  }
  return devices;
}

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), {});
  // The command name (field 2) may hold spaces; the fields after its ')' are space-separated.
  const auto close = content.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(content.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) {
      stime = std::stod(field);
      break;
    }
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// --------------------------------------------------------------------------------------------- The
// exporter under test

ExporterProcess::ExporterProcess(const std::filesystem::path& binary, std::vector<std::string> args,
                                 std::vector<std::pair<std::string, std::string>> env, int port)
    : dir_(std::make_unique<TempDir>("billing-exporter")), port_(port != 0 ? port : FreePort()) {
  Process::Options options;
  options.argv = {binary.string(), "--listen", "127.0.0.1:" + std::to_string(port_)};
  options.argv.insert(options.argv.end(), std::make_move_iterator(args.begin()),
                      std::make_move_iterator(args.end()));
  options.env = std::move(env);
  options.log_path = dir_->path() / "exporter.log";
  process_ = std::make_unique<Process>(std::move(options));
}

ExporterProcess::~ExporterProcess() {
  // SIGTERM first so the exporter closes its database sessions cleanly; the Process destructor
  // would go straight to SIGKILL.
  if (process_) process_->Stop(SIGTERM, seconds(5));
}

std::string ExporterProcess::BaseUrl() const { return "http://127.0.0.1:" + std::to_string(port_); }

bool ExporterProcess::WaitHealthy(std::chrono::milliseconds timeout) {
  bool exited = false;
  const std::string url = BaseUrl() + "/healthz";
  const bool done = WaitFor(
      [&] {
        if (!process_->Running()) return exited = true;
        return HttpGet(url, {}, seconds(2)).status == 200;
      },
      timeout);
  return done && !exited;
}

std::vector<MetricSample> ExporterProcess::Scrape() const {
  const HttpResponse response = HttpGet(BaseUrl() + "/metrics");
  if (response.status != 200) return {};
  return ParseMetricsText(response.body);
}

int ExporterProcess::Stop(int signal) { return process_->Stop(signal); }

}  // namespace billing::testbed
