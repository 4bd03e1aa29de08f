// Test harness: private PostgreSQL 15, Mosquitto 2.0 and Prometheus 2.42
// instances on 127.0.0.1, child processes, HTTP GET and a Prometheus
// text-format parser, shared by every test suite, the benchmarks and `make
// demo`. Every handle is RAII: destroying it stops what it started (by PID) and
// removes its temporary directory.
//
// Thread-safety: none of these classes may be used from two threads at once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace billing::testbed {

/// A free TCP port on 127.0.0.1 (bind to port 0, read it back, close).
int FreePort();

/// A field of /proc/<pid>/status in KiB ("VmRSS", "VmHWM"); 0 if it cannot be read.
long ProcStatusKib(pid_t pid, const std::string& field);

/// Polls `condition` every `poll` until it returns true or `timeout` passes;
/// returns its last answer.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
             std::chrono::milliseconds poll = std::chrono::milliseconds(50));

/// A directory under $TMPDIR (or /tmp) removed with everything in it on
/// destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "billing-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// A child process started with fork/exec; stdout and stderr go to `log_path`.
/// The destructor sends SIGKILL if it still runs and reaps it.
class Process {
 public:
  struct Options {
    std::vector<std::string> argv;  // argv[0] is the program path
    std::vector<std::pair<std::string, std::string>>
        env;                                 // set on top of the inherited environment
    std::vector<std::string> unset_env;      // removed from the inherited environment
    std::filesystem::path log_path;          // required
    std::optional<std::string> run_as_user;  // e.g. "postgres" when running as root
  };
  explicit Process(Options options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  /// Sends `signal`, waits up to `timeout` for exit (then SIGKILL); returns the
  /// exit status as from waitpid (use WIFEXITED/WEXITSTATUS), or -1 if it had
  /// already been reaped.
  int Stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// Waits for the process to exit on its own; returns the exit code
  /// (128+signal if killed) or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  /// Everything the process wrote so far.
  std::string Log() const;
  const std::filesystem::path& log_path() const { return options_.log_path; }

 private:
  Options options_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

/// Runs a program to completion; returns its exit code and combined
/// stdout+stderr.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::pair<std::string, std::string>>& env = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(120));

/// A private PostgreSQL 15 cluster: initdb into a temp dir, listening on
/// 127.0.0.1:<free port> only, password (scram-sha-256) authentication for TCP.
/// When run as root, the server runs as the "postgres" system user. Data
/// survive Stop()/Start().
class PostgresServer {
 public:
  PostgresServer();  // initdb and start; throws std::runtime_error with the
                     // server log on failure
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  int port() const { return port_; }
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  /// postgresql://USER:PASSWORD@127.0.0.1:PORT/DATABASE
  std::string Url(const std::string& database = "postgres") const;

  void Stop();   // fast shutdown; idempotent
  void Start();  // starts again on the same port with the same data; idempotent
  bool running() const { return process_ != nullptr; }
  /// Sends `signal` to the server and every process it started (backends, background workers):
  /// SIGSTOP freezes the whole server as an overloaded or suspended machine would, SIGCONT
  /// resumes it, SIGKILL crashes it (call Start() afterwards: it recovers from the crash).
  void SignalAll(int signal);

  /// Runs SQL (possibly several statements) through psql as the superuser;
  /// throws on error. Returns psql's unaligned, tuples-only output (fields
  /// separated by '|', rows by '\n').
  std::string Psql(const std::string& sql, const std::string& database = "postgres") const;
  void CreateDatabase(const std::string& name) const;

 private:
  std::unique_ptr<TempDir> dir_;
  int port_ = 0;
  std::string user_ = "postgres";
  std::string password_;
  std::unique_ptr<Process> process_;
};

/// A private Mosquitto 2.0 broker on 127.0.0.1:<free port>, anonymous access, $SYS published every
/// `sys_interval_seconds`, `extra_config` appended to its mosquitto.conf. Restart keeps the port
/// (a restarted broker starts its counters at zero).
class MosquittoServer {
 public:
  explicit MosquittoServer(int sys_interval_seconds = 1, std::string extra_config = "");
  ~MosquittoServer();
  MosquittoServer(const MosquittoServer&) = delete;
  MosquittoServer& operator=(const MosquittoServer&) = delete;

  int port() const { return port_; }
  std::string Url() const;  // tcp://127.0.0.1:PORT
  void Stop();
  void Start();
  bool running() const { return process_ != nullptr; }
  /// Sends `signal` to the broker (one process): SIGSTOP freezes it, SIGCONT resumes it.
  void Signal(int signal);
  /// Everything the broker logged so far (across restarts).
  std::string Log() const;

 private:
  std::unique_ptr<TempDir> dir_;
  int port_ = 0;
  int sys_interval_seconds_;
  std::string extra_config_;
  std::unique_ptr<Process> process_;
};

/// A private Prometheus 2.42 server on 127.0.0.1:<free port> scraping `targets`
/// ("host:port").
class PrometheusServer {
 public:
  /// With `tsdb_dir` (e.g. made by BackfillOpenMetrics) Prometheus serves that storage, with a
  /// retention of 100 years so backfilled history is never deleted.
  PrometheusServer(const std::vector<std::string>& targets,
                   std::chrono::seconds scrape_interval = std::chrono::seconds(1),
                   const std::string& extra_config = "",
                   const std::filesystem::path& tsdb_dir = {});
  ~PrometheusServer();
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  int port() const { return port_; }
  std::string Url() const;  // http://127.0.0.1:PORT
  /// GET /api/v1/query?query=...; returns the raw JSON body; throws on HTTP
  /// failure.
  std::string Query(const std::string& promql) const;

 private:
  std::unique_ptr<TempDir> dir_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

/// A private VictoriaMetrics single node (Debian's victoria-metrics 1.79) on 127.0.0.1:<free
/// port>, fed by a vmagent that scrapes `targets` ("host:port") every `scrape_interval` and
/// remote-writes to it: the long-term store a platform past one Prometheus queries instead. It
/// answers the Prometheus query API at Url().
class VictoriaMetricsServer {
 public:
  explicit VictoriaMetricsServer(const std::vector<std::string>& targets,
                                 std::chrono::seconds scrape_interval = std::chrono::seconds(1));
  ~VictoriaMetricsServer();
  VictoriaMetricsServer(const VictoriaMetricsServer&) = delete;
  VictoriaMetricsServer& operator=(const VictoriaMetricsServer&) = delete;

  std::string Url() const;  // http://127.0.0.1:PORT, the query API
  /// GET /api/v1/query?query=...; returns the raw JSON body; throws on HTTP failure.
  std::string Query(const std::string& promql) const;

 private:
  std::unique_ptr<TempDir> dir_;
  int port_ = 0;
  std::unique_ptr<Process> store_;
  std::unique_ptr<Process> agent_;
};

/// A private SMTP server (Debian's aiosmtpd) on 127.0.0.1:<free port> that stores every message
/// it accepts in a Maildir.
class SmtpServer {
 public:
  SmtpServer();  // throws std::runtime_error with the server's log if it does not start
  ~SmtpServer();
  SmtpServer(const SmtpServer&) = delete;
  SmtpServer& operator=(const SmtpServer&) = delete;

  int port() const { return port_; }
  std::string Url() const;  // smtp://127.0.0.1:PORT
  /// Every message received so far, as its raw text (headers and body), oldest first.
  std::vector<std::string> Messages() const;

 private:
  std::unique_ptr<TempDir> dir_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

/// Writes `openmetrics` (OpenMetrics text ending in "# EOF") to a file and turns it into TSDB
/// blocks in `tsdb_dir` with `promtool tsdb create-blocks-from openmetrics`; throws on failure.
void BackfillOpenMetrics(const std::string& openmetrics, const std::filesystem::path& tsdb_dir);

struct HttpResponse {
  long status = 0;                             // 0 when the connection failed
  std::string body;                            // as received (not decompressed)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string error;                           // transport error text when status == 0
};
HttpResponse HttpGet(const std::string& url, const std::vector<std::string>& request_headers = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));
/// Any method, with a request body (sent as is; give the Content-Type in `request_headers`).
HttpResponse HttpRequest(const std::string& method, const std::string& url,
                         const std::string& body = "",
                         const std::vector<std::string>& request_headers = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// Decompresses a gzip stream; throws std::runtime_error if it is not valid
/// gzip.
std::string Gunzip(const std::string& compressed);

/// One sample of the Prometheus text exposition format.
struct MetricSample {
  std::string name;
  std::map<std::string, std::string> labels;  // values unescaped
  double value = 0;
};
/// Parses the text format (comments skipped, label values unescaped); throws on
/// a malformed line.
std::vector<MetricSample> ParseMetricsText(const std::string& text);
/// The value of the one sample with this name whose labels include `labels`;
/// nullopt if none.
std::optional<double> FindValue(const std::vector<MetricSample>& samples, const std::string& name,
                                const std::map<std::string, std::string>& labels = {});
/// Every sample with this name whose labels include `labels`.
std::vector<MetricSample> FindAll(const std::vector<MetricSample>& samples, const std::string& name,
                                  const std::map<std::string, std::string>& labels = {});
/// The sum of every sample with this name whose labels include `labels` (0 if none).
double Sum(const std::vector<MetricSample>& samples, const std::string& name,
           const std::map<std::string, std::string>& labels = {});

/// What tools/device-simulator says it sent (its one-line JSON summary).
struct SimulatorSummary {
  long messages = 0;
  double payload_bytes = 0;
};
/// Finds the simulator's summary in its output; nullopt if there is none.
std::optional<SimulatorSummary> ParseSimulatorSummary(const std::string& output);

/// What one simulated device says it sent (its per-device line with --connections per-device).
struct SimulatedDevice {
  std::string client_id;
  std::string username;
  double messages = 0;
  double payload = 0;
  double units = 0;  // 5,120-byte metering units
  double connected_s = 0;
};
/// Every per-device line in the simulator's output, in order.
std::vector<SimulatedDevice> ParseSimulatorDevices(const std::string& output);

/// User + system CPU seconds a process has used so far (/proc/PID/stat); 0 if it is gone.
double ProcessCpuSeconds(pid_t pid);

/// The billing-exporter binary running as a child process on 127.0.0.1:<free
/// port>.
class ExporterProcess {
 public:
  /// `port` 0 picks a free port; a fixed one lets a restarted exporter keep its scrape target.
  ExporterProcess(const std::filesystem::path& binary, std::vector<std::string> args,
                  std::vector<std::pair<std::string, std::string>> env, int port = 0);
  ~ExporterProcess();
  ExporterProcess(const ExporterProcess&) = delete;
  ExporterProcess& operator=(const ExporterProcess&) = delete;

  int port() const { return port_; }
  std::string BaseUrl() const;  // http://127.0.0.1:PORT
  /// Waits until GET /healthz answers 200; false on timeout or if the process
  /// exited.
  bool WaitHealthy(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// GET /metrics parsed; empty if the request failed.
  std::vector<MetricSample> Scrape() const;
  int Stop(int signal = 15);  // SIGTERM by default; returns waitpid status
  Process& process() { return *process_; }

 private:
  std::unique_ptr<TempDir> dir_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace billing::testbed
