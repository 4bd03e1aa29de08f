// Issue 7's side-by-side suite: billing-exporter against the peers a user would otherwise pick
// (Debian's prometheus-postgres-exporter with a custom-queries file, prometheus-mqtt-exporter) and
// the physical floor (the exporter's first, full sample's SQL run directly by psql, the same
// response bytes served as a static file by nginx), all started privately on 127.0.0.1 in one run,
// alternating between the tools. Prints a table of ratios with PASS/MISS against the issue's
// targets and appends it, with versions and the machine, to a markdown file (bench/RESULTS.md from
// bench/run.sh).
//
//   build/bench/side_by_side [--sizes 100,1000,10000] [--scrapes 200] [--big-rows 2000000]
//                            [--mqtt-seconds 3] [--fixed-seconds 10] [--results FILE]
//                            [--skip-postgres] [--skip-mqtt]
//
// Nothing here is a test: no figure is asserted and the exit status only reports broken setup.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "postgres_queries.h"
#include "testbed.h"

namespace {

using namespace billing::testbed;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kPgBin = "/usr/lib/postgresql/15/bin/";
constexpr const char* kRolePassword = "bench-secret";
constexpr int kPublishers = 3;  // one Paho publisher alone tops out below the broker's rate

// The billing-exporter's own catalog SQL: the floor is exactly the text the exporter sends.
using billing::exporter::kDatabaseSizeQuery;
using billing::exporter::kDatabaseStateQuery;
using billing::exporter::kRelationSizesQuery;
using billing::exporter::kRelationStateQuery;

// ------------------------------------------------------------------------------------------------
// /proc

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Fields after the command name of /proc/<pid>/stat (the name may contain spaces and parens).
std::vector<std::string> StatFields(const std::string& stat) {
  const auto close = stat.rfind(')');
  std::vector<std::string> fields;
  if (close == std::string::npos) return fields;
  std::istringstream in(stat.substr(close + 2));
  for (std::string f; in >> f;) fields.push_back(f);
  return fields;
}

// utime + stime in seconds from a /proc/<pid>/stat text; field 14 and 15 (1-based) are index 11
// and 12 after the name.
double StatCpuSeconds(const std::string& stat) {
  const auto f = StatFields(stat);
  if (f.size() < 13) return 0;
  return (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double CpuSeconds(pid_t pid) {
  return StatCpuSeconds(ReadAll("/proc/" + std::to_string(pid) + "/stat"));
}

double CpuSeconds(const std::vector<pid_t>& pids) {
  double total = 0;
  for (pid_t p : pids) total += CpuSeconds(p);
  return total;
}

// CPU of a single-threaded process (a PostgreSQL backend) from /proc/<pid>/schedstat: its first
// field is the time on CPU in nanoseconds, where /proc/<pid>/stat counts 10 ms ticks, too coarse
// for one catalog sample of a small database.
double SchedCpuSeconds(const std::string& schedstat) {
  std::istringstream in(schedstat);
  double ns = 0;
  in >> ns;
  return ns / 1e9;
}

double BackendCpuSeconds(pid_t pid) {
  return SchedCpuSeconds(ReadAll("/proc/" + std::to_string(pid) + "/schedstat"));
}

// CPU of the threads of `pid` whose name starts with `prefix`, from /proc/<pid>/task/<tid>/stat:
// billing-exporter serves on civetweb's named threads and samples on another, so a scrape's cost
// is read without the samples that happen to run meanwhile (the threads live as long as the
// server).
double ThreadCpuSeconds(pid_t pid, const std::string& prefix) {
  double total = 0;
  const fs::path tasks = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& task : fs::directory_iterator(tasks, ec)) {
    std::string comm = ReadAll(task.path() / "comm");
    if (comm.rfind(prefix, 0) == 0) total += StatCpuSeconds(ReadAll(task.path() / "stat"));
  }
  return total;
}

// Resident set size in MiB from /proc/<pid>/status.
double RssMiB(pid_t pid) { return static_cast<double>(ProcStatusKib(pid, "VmRSS")) / 1024.0; }

// `root` and every process below it (nginx: the master and its worker).
std::vector<pid_t> ProcessTree(pid_t root) {
  std::map<pid_t, std::vector<pid_t>> children;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const auto f = StatFields(ReadAll(entry.path() / "stat"));
    if (f.size() > 1) children[static_cast<pid_t>(std::stol(f[1]))].push_back(std::stoi(name));
  }
  std::vector<pid_t> tree{root};
  for (std::size_t i = 0; i < tree.size(); ++i) {
    for (pid_t c : children[tree[i]]) tree.push_back(c);
  }
  return tree;
}

// ------------------------------------------------------------------------------------------------
// Statistics and formatting

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // Nearest rank: p99 of 200 values is the 198th, an observed latency rather than an interpolation.
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

std::string Fmt(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

std::string Bytes(double bytes) {
  if (bytes >= 1e6) return Fmt("%.2f MB", bytes / 1e6);
  if (bytes >= 1e3) return Fmt("%.1f KB", bytes / 1e3);
  return Fmt("%.0f B", bytes);
}

std::string Count(double n) {
  const std::string digits = Fmt("%.0f", n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

// Collects the markdown written to stdout and to the results file alike.
class Report {
 public:
  void Line(const std::string& text = "") {
    std::cout << text << "\n" << std::flush;
    text_ += text + "\n";
  }
  void Table(const std::vector<std::string>& header,
             const std::vector<std::vector<std::string>>& rows) {
    auto row_text = [](const std::vector<std::string>& cells) {
      std::string line = "|";
      for (const auto& c : cells) line += " " + c + " |";
      return line;
    };
    Line(row_text(header));
    Line(row_text(std::vector<std::string>(header.size(), "---")));
    for (const auto& r : rows) Line(row_text(r));
    Line();
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// One target of the issue: `ratio` must be <= target (or >= when `at_least`).
struct Verdict {
  std::string what;
  std::string where;
  double ratio = 0;
  double target = 0;
  bool at_least = false;
};

std::vector<std::string> VerdictRow(const Verdict& v) {
  const bool pass = v.at_least ? v.ratio >= v.target : v.ratio <= v.target;
  // "By how much": the factor between ratio and target, in the direction that matters.
  const double factor = v.at_least ? (v.target > 0 ? v.ratio / v.target : 0)
                                   : (v.ratio > 0 ? v.target / v.ratio : INFINITY);
  std::string margin = pass ? Fmt("PASS (%.2fx headroom)", factor)
                            : Fmt("**MISS** (%.2fx off target)", factor > 0 ? 1 / factor : 0);
  return {v.what, v.where, Fmt("%.4g", v.ratio),
          std::string(v.at_least ? ">= " : "<= ") + Fmt("%.4g", v.target), margin};
}

// ------------------------------------------------------------------------------------------------
// HTTP

struct Timed {
  double ms = 0;
  HttpResponse response;
};

Timed TimedGet(const std::string& url, bool gzip) {
  std::vector<std::string> headers;
  if (gzip) headers.push_back("Accept-Encoding: gzip");
  const auto start = Clock::now();
  // testbed::HttpGet: a fresh libcurl handle and TCP connection per request, the same for every
  // tool, so connection setup is in every figure alike.
  Timed t{0, HttpGet(url, headers, 120s)};
  t.ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return t;
}

std::size_t SeriesLines(const std::string& text) {
  std::size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') ++n;
  }
  return n;
}

// The postgres collector's last sample time from a billing-exporter page: each distinct value is
// one completed catalog sample.
std::string LastPostgresSample(const std::string& page) {
  static const std::regex re(
      R"re(iotistic_exporter_last_sample_timestamp_seconds\{[^}]*collector="postgres"[^}]*\} (\S+))re");
  std::smatch m;
  return std::regex_search(page, m, re) ? m[1].str() : "";
}

// ------------------------------------------------------------------------------------------------
// PostgreSQL

Process::Options Opts(std::vector<std::string> argv, fs::path log,
                      std::vector<std::pair<std::string, std::string>> env = {}) {
  return Process::Options{.argv = std::move(argv),
                          .env = std::move(env),
                          .unset_env = {},
                          .log_path = std::move(log),
                          .run_as_user = std::nullopt};
}

// Backend CPU of one role: each tool logs in as its own role, so pg_stat_activity.usename names
// the backends serving it and their /proc/<pid>/stat is the load that tool puts on the database.
class RoleCpu {
 public:
  RoleCpu(const PostgresServer& pg, std::string role) : pg_(pg), role_(std::move(role)) {}
  void Start() { start_ = Snapshot(); }
  // CPU seconds since Start() of the backends alive now; a backend that ended in between is lost,
  // which `lost()` reports (none is expected: every tool keeps its connection).
  double Stop() {
    const auto end = Snapshot();
    lost_ = 0;
    for (const auto& [pid, cpu] : start_) lost_ += end.count(pid) ? 0 : 1;
    double total = 0;
    for (const auto& [pid, cpu] : end) total += cpu - (start_.count(pid) ? start_.at(pid) : 0.0);
    return total;
  }
  int lost() const { return lost_; }
  std::size_t backends() const { return start_.size(); }

 private:
  std::map<pid_t, double> Snapshot() const {
    std::map<pid_t, double> cpu;
    std::istringstream pids(
        pg_.Psql("SELECT pid FROM pg_stat_activity WHERE usename = '" + role_ + "'"));
    for (std::string line; std::getline(pids, line);) {
      if (!line.empty()) cpu[std::stoi(line)] = BackendCpuSeconds(std::stoi(line));
    }
    return cpu;
  }
  const PostgresServer& pg_;
  std::string role_;
  std::map<pid_t, double> start_;
  int lost_ = 0;
};

std::string RoleUrl(const PostgresServer& pg, const std::string& role, const std::string& db) {
  return "postgresql://" + role + ":" + kRolePassword + "@127.0.0.1:" + std::to_string(pg.port()) +
         "/" + db + "?sslmode=disable";
}

// N user tables (each with a primary key, a TOAST-able column and a few rows, so every size column
// and n_tup_ins is non-zero) and one table of `big_rows` rows. Committed every 500 tables: one
// transaction would need more locks than max_locks_per_transaction allows.
void GenerateDatabase(const PostgresServer& pg, const std::string& db, int tables, long big_rows) {
  pg.CreateDatabase(db);
  pg.Psql(
      "CREATE TABLE public.readings (id bigint PRIMARY KEY, device int NOT NULL, "
      "ts timestamptz NOT NULL, value double precision NOT NULL);\n"
      "INSERT INTO public.readings SELECT g, g % 500, now() - g * interval '1 second', "
      "random() * 100 FROM generate_series(1, " +
          std::to_string(big_rows) +
          ") g;\n"
          "VACUUM (ANALYZE) public.readings;\n"
          "DO $$ BEGIN FOR i IN 1.." +
          std::to_string(tables - 1) +
          " LOOP\n"
          "  EXECUTE format('CREATE TABLE public.sensor_data_%s (id bigserial PRIMARY KEY, "
          "device text NOT NULL, payload jsonb)', i);\n"
          "  EXECUTE format('INSERT INTO public.sensor_data_%s (device, payload) SELECT ''d'' || "
          "g, jsonb_build_object(''v'', g) FROM generate_series(1, 1 + %s %% 5) g', i, i);\n"
          "  IF i % 500 = 0 THEN COMMIT; END IF;\n"
          "END LOOP; END $$;\n",
      db);
}

struct PsqlFloor {
  double median_ms = 0;  // one full sample's statements, as psql's \timing reports them
  double pg_cpu_ms = 0;  // the backend's CPU per run of them
};

// What billing-exporter sends on its first (full) sample, every relation's sizes and the
// database size measured, `runs` times in one psql session (no connection setup in the figures):
// the same transaction, the same four statements prepared once as the exporter prepares them, and
// the savepoint; the size query's oid[] parameter through EXECUTE (psql 15 has no \bind). psql's
// \timing for latency, the session backend's /proc/<pid>/schedstat before and after for CPU.
PsqlFloor MeasurePsqlFloor(const PostgresServer& pg, const std::string& db, int runs,
                           const fs::path& dir) {
  const fs::path script = dir / ("floor-" + db + ".sql");
  const fs::path before = dir / ("floor-" + db + ".before"),
                 after = dir / ("floor-" + db + ".after");
  {
    std::ofstream out(script);
    // \! gets no variable interpolation, \setenv does: the backend pid reaches the shell that way.
    out << "SELECT pg_backend_pid() AS bpid \\gset\n\\setenv BPID :bpid\n"
        << "\\! cat /proc/$BPID/schedstat > " << before.string() << "\n"
        << "PREPARE database_state AS " << kDatabaseStateQuery << ";\n"
        << "PREPARE relation_state AS " << kRelationStateQuery << ";\n"
        << "PREPARE sizes(oid[]) AS " << kRelationSizesQuery << ";\n"
        << "PREPARE database_size AS " << kDatabaseSizeQuery << ";\n"
        << "SELECT array_agg(s.oid)::text AS oids FROM (" << kRelationStateQuery
        << ") s(oid) \\gset\n"
        << "\\timing on\n\\o /dev/null\n";
    for (int i = 0; i < runs; ++i) {
      out << "BEGIN READ ONLY;\nEXECUTE database_state;\nEXECUTE relation_state;\n"
          << "SAVEPOINT sizes;\nEXECUTE sizes(:'oids');\nRELEASE SAVEPOINT sizes;\n"
          << "EXECUTE database_size;\nCOMMIT;\n";
    }
    out << "\\o\n\\timing off\n\\! cat /proc/$BPID/schedstat > " << after.string() << "\n";
  }
  const auto result = RunCommand(
      {std::string(kPgBin) + "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
       std::to_string(pg.port()), "-U", "bench_floor", "-d", db, "-f", script.string()},
      {{"PGPASSWORD", kRolePassword}}, 600s);
  if (result.exit_code != 0) throw std::runtime_error("psql floor failed: " + result.output);
  std::vector<double> times;
  static const std::regex time_re(R"(Time: ([0-9.]+) ms)");
  for (auto it = std::sregex_iterator(result.output.begin(), result.output.end(), time_re);
       it != std::sregex_iterator(); ++it) {
    times.push_back(std::stod((*it)[1]));
  }
  constexpr std::size_t kStatements = 8;  // per run, as written above
  std::vector<double> per_run;
  for (std::size_t i = 0; i + kStatements <= times.size(); i += kStatements) {
    per_run.push_back(std::accumulate(times.begin() + static_cast<std::ptrdiff_t>(i),
                                      times.begin() + static_cast<std::ptrdiff_t>(i + kStatements),
                                      0.0));
  }
  PsqlFloor floor;
  floor.median_ms = Quantile(per_run, 0.5);
  floor.pg_cpu_ms =
      1e3 * (SchedCpuSeconds(ReadAll(after)) - SchedCpuSeconds(ReadAll(before))) / runs;
  return floor;
}

// ------------------------------------------------------------------------------------------------
// The tools under test, each behind /metrics on a free 127.0.0.1 port

struct Tool {
  std::string name;
  std::string url;
  std::vector<pid_t> pids;   // whose CPU counts as the tool's
  std::string threads = {};  // if set: only threads whose name starts with this count
  std::vector<double> plain_ms = {}, gzip_ms = {};
  std::size_t plain_bytes = 0, gzip_bytes = 0, series = 0;
  double cpu_s = 0;  // over the scrape loop
  std::size_t scrapes = 0;
  double rss_idle = 0, rss_after = 0;
};

class Nginx {
 public:
  // Serves `plain` at /metrics and, through gzip_static, `gzip` to requests that accept it: the
  // billing-exporter's own bytes, so the floor is the same response from a static file server.
  Nginx(const std::string& plain, const std::string& gzip)
      : dir_("bench-nginx"), port_(FreePort()) {
    const fs::path www = dir_.path() / "www";
    fs::create_directories(www);
    std::ofstream(www / "metrics", std::ios::binary) << plain;
    std::ofstream(www / "metrics.gz", std::ios::binary) << gzip;
    const std::string d = dir_.path().string();
    std::ofstream(dir_.path() / "nginx.conf")
        // `user root`: the temp dir is private to root; one worker, like one exporter thread pool
        // on a 2-core box; every path inside the temp dir so nothing touches /var or /run.
        << "user root;\ndaemon off;\nworker_processes 1;\npid " << d << "/nginx.pid;\n"
        << "error_log " << d << "/error.log warn;\nevents { worker_connections 256; }\n"
        << "http {\n  access_log off;\n  client_body_temp_path " << d << "/body;\n"
        << "  proxy_temp_path " << d << "/proxy;\n  fastcgi_temp_path " << d << "/fastcgi;\n"
        << "  uwsgi_temp_path " << d << "/uwsgi;\n  scgi_temp_path " << d << "/scgi;\n"
        << "  server {\n    listen 127.0.0.1:" << port_ << ";\n    root " << www.string()
        << ";\n    location = /metrics {\n"
        << "      default_type \"text/plain; version=0.0.4; charset=utf-8\";\n"
        << "      gzip_static on;\n    }\n  }\n}\n";
    process_ = std::make_unique<Process>(
        Opts({"/usr/sbin/nginx", "-p", d, "-e", d + "/error.log", "-c", d + "/nginx.conf"},
             dir_.path() / "nginx.log"));
    if (!WaitFor([&] { return HttpGet(Url(), {}, 2s).status == 200; }, 20s)) {
      throw std::runtime_error("nginx did not start: " + process_->Log() +
                               ReadAll(dir_.path() / "error.log"));
    }
  }
  ~Nginx() {
    if (process_) process_->Stop(SIGQUIT, 10s);  // graceful: the master reaps its worker
  }
  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/metrics"; }
  pid_t pid() const { return process_->pid(); }

 private:
  TempDir dir_;
  int port_;
  std::unique_ptr<Process> process_;
};

class PostgresExporter {
 public:
  PostgresExporter(const std::string& dsn, const fs::path& queries)
      : dir_("bench-pgexp"), port_(FreePort()) {
    // Only the custom queries: the default collectors (pg_stat_database, bgwriter, locks,
    // replication, ...) and pg_settings export figures billing-exporter does not and would load
    // the database with work the comparison is not about.
    process_ = std::make_unique<Process>(
        Opts({"/usr/bin/prometheus-postgres-exporter",
              "--web.listen-address=127.0.0.1:" + std::to_string(port_),
              "--extend.query-path=" + queries.string(), "--disable-default-metrics",
              "--disable-settings-metrics", "--no-collector.database", "--no-collector.bgwriter",
              "--log.level=warn"},
             dir_.path() / "pgexp.log", {{"DATA_SOURCE_NAME", dsn}}));
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/metrics"; }
  Process& process() { return *process_; }

 private:
  TempDir dir_;
  int port_;
  std::unique_ptr<Process> process_;
};

// A billing-exporter on `db` with the table cap lifted (the peer exports every table too), every
// table's sizes at most `size_max_age` old.
std::unique_ptr<ExporterProcess> StartBilling(const PostgresServer& pg, const std::string& role,
                                              const std::string& db, const std::string& interval,
                                              const std::string& size_max_age, const TempDir& dir) {
  const fs::path config = dir.path() / ("billing-" + role + "-" + db + ".yaml");
  std::ofstream(config) << "postgres:\n  max_table_series: 100000\n  size_max_age: " << size_max_age
                        << "\n";
  auto exporter = std::make_unique<ExporterProcess>(
      BILLING_EXPORTER_PATH, std::vector<std::string>{"--config", config.string()},
      std::vector<std::pair<std::string, std::string>>{{"DATABASE_URL", RoleUrl(pg, role, db)},
                                                       {"SAMPLE_INTERVAL", interval}});
  const std::string ready = exporter->BaseUrl() + "/readyz";
  if (!exporter->WaitHealthy() ||
      !WaitFor([&] { return HttpGet(ready, {}, 5s).status == 200; }, 120s, 100ms)) {
    throw std::runtime_error("billing-exporter not ready: " + exporter->process().Log());
  }
  return exporter;
}

struct SizeResult {
  int tables = 0;
  std::vector<Tool> tools;  // billing-exporter, postgres_exporter, nginx
  PsqlFloor floor;
  double billing_pg_cpu_per_sample_ms = 0;
  double billing_cpu_per_sample_ms = 0;
  double billing_sample_seconds = 0;  // the exporter's own iotistic_exporter_sample_duration
  double billing_loop_samples = 0;
  double billing_loop_pg_ms = 0;
  double pgexp_pg_cpu_per_scrape_ms = 0;
  int lost_backends = 0;
};

SizeResult MeasureSize(const PostgresServer& pg, const std::string& db, int tables, int scrapes,
                       const TempDir& dir) {
  SizeResult r;
  r.tables = tables;

  // A light, steady write load on `readings` for the whole measurement, the same for every tool:
  // 10 rows every 200 ms by the superuser (whose backend no tool's figure counts). billing-exporter
  // re-measures `readings` whenever it was written, as a real tenant's would be.
  pg.Psql("DROP SEQUENCE IF EXISTS readings_load; CREATE SEQUENCE readings_load START " +
              std::to_string(1000000000L) + ";",
          db);
  const fs::path load_script = dir.path() / ("load-" + db + ".sql");
  std::ofstream(load_script) << "INSERT INTO public.readings SELECT nextval('readings_load'), "
                                "g % 500, now(), random() * 100 FROM generate_series(1, 10) g "
                                "\\watch 0.2\n";
  Process load(
      Opts({std::string(kPgBin) + "psql", "-X", "-q", pg.Url(db), "-f", load_script.string()},
           dir.path() / ("load-" + db + ".log")));

  // 1. Per-sample cost of billing-exporter, alone: an instance sampling every 500 ms with
  //    size_max_age 10s (one full sample in 20, as with the default 15 s and 5m), watched through
  //    gzip scrapes (a few per sample, each far cheaper than a sample). The average over 20
  //    consecutive samples after the first: exactly one full sample among them.
  {
    auto sampler = StartBilling(pg, "bench_sampler", db, "500ms", "10s", dir);
    RoleCpu role(pg, "bench_sampler");
    const std::string url = sampler->BaseUrl() + "/metrics";
    auto stamp = [&] { return LastPostgresSample(Gunzip(TimedGet(url, true).response.body)); };
    std::string last = stamp();
    WaitFor([&] { return stamp() != last; }, 60s, 20ms);  // start right after a sample
    last = stamp();
    role.Start();
    const double cpu0 = CpuSeconds(sampler->process().pid());
    int samples = 0;
    const auto deadline = Clock::now() + 40s;
    while (samples < 20 && Clock::now() < deadline) {
      WaitFor([&] { return stamp() != last; }, 30s, 20ms);
      last = stamp();
      ++samples;
    }
    r.billing_cpu_per_sample_ms =
        1e3 * (CpuSeconds(sampler->process().pid()) - cpu0) / std::max(samples, 1);
    r.billing_pg_cpu_per_sample_ms = 1e3 * role.Stop() / std::max(samples, 1);
    r.lost_backends += role.lost();
    const auto page = ParseMetricsText(Gunzip(TimedGet(url, true).response.body));
    r.billing_sample_seconds =
        FindValue(page, "iotistic_exporter_sample_duration_seconds", {{"collector", "postgres"}})
            .value_or(0);
  }

  // 2. The floor's query side: psql running the same SQL.
  r.floor = MeasurePsqlFloor(pg, db, tables >= 10000 ? 10 : 30, dir.path());

  // 3. Scrapes, alternating: every round scrapes each tool plain and gzip, in a rotating order.
  auto billing = StartBilling(pg, "bench_billing", db, "15s", "5m", dir);
  PostgresExporter pgexp(RoleUrl(pg, "bench_pgexp", db),
                         fs::path(BILLING_BENCH_DIR) / "postgres_exporter_queries.yaml");
  if (!WaitFor(
          [&] {
            return HttpGet(pgexp.Url(), {}, 120s).body.find("billing_table_rows") !=
                   std::string::npos;
          },
          60s, 200ms)) {
    throw std::runtime_error("postgres_exporter not serving: " + pgexp.process().Log());
  }
  const auto billing_plain = TimedGet(billing->BaseUrl() + "/metrics", false).response.body;
  const auto billing_gzip = TimedGet(billing->BaseUrl() + "/metrics", true).response.body;
  Nginx nginx(billing_plain, billing_gzip);

  r.tools = {
      Tool{.name = "billing-exporter",
           .url = billing->BaseUrl() + "/metrics",
           .pids = {billing->process().pid()}},
      Tool{.name = "postgres_exporter", .url = pgexp.Url(), .pids = {pgexp.process().pid()}},
      Tool{.name = "nginx (static file)", .url = nginx.Url(), .pids = ProcessTree(nginx.pid())}};
  // Idle: started, first sample (billing) or first scrape (postgres_exporter, the readiness
  // probe above) done, no sustained scraping yet.
  for (auto& t : r.tools) t.rss_idle = RssMiB(t.pids.front());

  RoleCpu billing_role(pg, "bench_billing"), pgexp_role(pg, "bench_pgexp");
  billing_role.Start();
  pgexp_role.Start();
  auto tool_cpu = [](const Tool& t) {
    return t.threads.empty() ? CpuSeconds(t.pids) : ThreadCpuSeconds(t.pids.front(), t.threads);
  };
  std::vector<double> cpu0;
  for (auto& t : r.tools) cpu0.push_back(tool_cpu(t));
  std::set<std::string> stamps;
  const auto loop_deadline =
      Clock::now() + 12min;  // bound: a pathological peer cannot hold up the suite
  for (int round = 0; round < scrapes && Clock::now() < loop_deadline; ++round) {
    for (int gzip = 0; gzip < 2; ++gzip) {
      for (std::size_t k = 0; k < r.tools.size(); ++k) {
        Tool& t = r.tools[(k + static_cast<std::size_t>(round)) % r.tools.size()];
        const auto got = TimedGet(t.url, gzip != 0);
        if (got.response.status != 200) {
          throw std::runtime_error(t.name + " scrape failed: " +
                                   std::to_string(got.response.status) + " " + got.response.error);
        }
        (gzip ? t.gzip_ms : t.plain_ms).push_back(got.ms);
        (gzip ? t.gzip_bytes : t.plain_bytes) = got.response.body.size();
        ++t.scrapes;
        if (!gzip) {
          t.series = SeriesLines(got.response.body);
          if (&t == &r.tools[0]) stamps.insert(LastPostgresSample(got.response.body));
        }
      }
    }
  }
  for (std::size_t i = 0; i < r.tools.size(); ++i) {
    r.tools[i].cpu_s = tool_cpu(r.tools[i]) - cpu0[i];
    r.tools[i].rss_after = RssMiB(r.tools[i].pids.front());
  }
  r.billing_loop_pg_ms = 1e3 * billing_role.Stop();
  const double pgexp_pg = pgexp_role.Stop();
  r.lost_backends += billing_role.lost() + pgexp_role.lost();
  r.pgexp_pg_cpu_per_scrape_ms = 1e3 * pgexp_pg / static_cast<double>(r.tools[1].scrapes);
  r.billing_loop_samples = static_cast<double>(stamps.size()) - 1;
  return r;
}

// ------------------------------------------------------------------------------------------------
// MQTT

struct Publishers {
  long sent = 0;
  double rate = 0;
};

Publishers Publish(const MosquittoServer& broker, double rate, long messages, const fs::path& dir,
                   const std::string& tag) {
  std::vector<std::unique_ptr<Process>> publishers;
  for (int p = 0; p < kPublishers; ++p) {
    publishers.push_back(std::make_unique<Process>(
        Opts({BILLING_SIMULATOR_PATH, "--url", broker.Url(), "--devices", "500", "--messages",
              std::to_string(messages / kPublishers), "--rate", std::to_string(rate / kPublishers),
              "--qos", "0", "--payload-max", "200", "--client-id",
              "bench-pub-" + tag + "-" + std::to_string(p), "--seed", std::to_string(p + 1)},
             dir / ("pub-" + tag + "-" + std::to_string(p) + ".txt"))));
  }
  Publishers total;
  static const std::regex re(R"re("messages":(\d+).*"rate":([0-9.]+))re");
  for (auto& publisher : publishers) {
    const auto code = publisher->Wait(300s);
    std::smatch m;
    const std::string log = publisher->Log();
    if (code != 0 || !std::regex_search(log, m, re)) {
      throw std::runtime_error("simulator failed: " + log);
    }
    total.sent += std::stol(m[1]);
    total.rate += std::stod(m[2]);
  }
  return total;
}

double SumOf(const std::string& url, const std::string& name) {
  const auto r = HttpGet(url, {}, 10s);
  if (r.status != 200) return -1;
  double total = 0;
  for (const auto& s : FindAll(ParseMetricsText(r.body), name)) total += s.value;
  return total;
}

std::size_t Lines(const fs::path& path) {
  std::ifstream in(path);
  return static_cast<std::size_t>(std::count(std::istreambuf_iterator<char>(in), {}, '\n'));
}

// One MQTT subscriber under test: how to start it and how many messages it has so far.
class Subscriber {
 public:
  virtual ~Subscriber() = default;
  virtual std::string Name() const = 0;
  virtual pid_t Pid() = 0;
  virtual double Received() = 0;  // since it started
};

class PlainSub : public Subscriber {
 public:
  // `count` false: output to /dev/null (the CPU floor); true: to a file whose lines are counted.
  PlainSub(const MosquittoServer& broker, const fs::path& out, bool count)
      : out_(count ? out : fs::path("/dev/null")),
        process_(Opts({"mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(broker.port()),
                       "-q", "0", "-t", "devices/#"},
                      out_)) {
    std::this_thread::sleep_for(1s);  // connected and subscribed well within this on loopback
  }
  std::string Name() const override { return "mosquitto_sub"; }
  pid_t Pid() override { return process_.pid(); }
  double Received() override { return static_cast<double>(Lines(out_)); }

 private:
  fs::path out_;
  Process process_;
};

class BillingSub : public Subscriber {
 public:
  explicit BillingSub(const MosquittoServer& broker)
      : exporter_(BILLING_EXPORTER_PATH, {},
                  {{"MQTT_URL", broker.Url()}, {"SAMPLE_INTERVAL", "1s"}}) {
    if (!exporter_.WaitHealthy() ||
        !WaitFor([&] { return FindValue(exporter_.Scrape(), "iotistic_mqtt_up") == 1.0; }, 30s)) {
      throw std::runtime_error("billing-exporter did not connect: " + exporter_.process().Log());
    }
    base_ = Received();
  }
  std::string Name() const override { return "billing-exporter"; }
  pid_t Pid() override { return exporter_.process().pid(); }
  double Received() override {
    return SumOf(exporter_.BaseUrl() + "/metrics", "iotistic_mqtt_messages_total") - base_;
  }

 private:
  ExporterProcess exporter_;
  double base_ = 0;
};

class Mqtt2Prometheus : public Subscriber {
 public:
  Mqtt2Prometheus(const MosquittoServer& broker, const TempDir& dir, const std::string& tag)
      : port_(FreePort()) {
    // Counts the same telemetry: every message on devices/<id>/telemetry, its readings kept as
    // gauges per device; received_messages{topic,status} is its per-topic message counter.
    const fs::path config = dir.path() / ("mqtt2prometheus-" + tag + ".yaml");
    std::ofstream(config)
        << "mqtt:\n  server: " << broker.Url() << "\n  client_id: bench-mqtt2prometheus-" << tag
        << "\n  topic_path: devices/#\n"
        << "  device_id_regex: \"devices/(?P<deviceid>[^/]+)/telemetry\"\n  qos: 0\n"
        << "cache:\n  timeout: 24h\nmetrics:\n"
        << "  - {prom_name: temperature_c, mqtt_name: temperature_c, help: t, type: gauge}\n"
        << "  - {prom_name: humidity_pct, mqtt_name: humidity_pct, help: h, type: gauge}\n"
        << "  - {prom_name: battery, mqtt_name: battery, help: b, type: gauge}\n";
    process_ = std::make_unique<Process>(
        Opts({"/usr/bin/prometheus-mqtt-exporter", "-config", config.string(), "-listen-address",
              "127.0.0.1", "-listen-port", std::to_string(port_), "-log-level", "warn"},
             dir.path() / ("mqtt2prometheus-" + tag + ".log")));
    if (!WaitFor([&] { return SumOf(Url(), "mqtt2prometheus_connected") == 1.0; }, 30s)) {
      throw std::runtime_error("mqtt2prometheus did not connect: " + process_->Log());
    }
    std::this_thread::sleep_for(500ms);  // its subscription follows the connection
  }
  std::string Name() const override { return "mqtt2prometheus"; }
  pid_t Pid() override { return process_->pid(); }
  double Received() override { return SumOf(Url(), "received_messages"); }

 private:
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/metrics"; }
  int port_;
  std::unique_ptr<Process> process_;
};

struct MqttResult {
  std::vector<std::vector<std::string>> ramp_rows;
  std::map<std::string, double> best;  // highest zero-loss publish rate per subscriber
  struct Fixed {
    double sent_rate = 0, received_pct = 0, cpu_us_per_msg = 0, rss_idle = 0, rss_after = 0;
  };
  std::map<std::string, Fixed> fixed;
};

MqttResult MeasureMqtt(double seconds_per_step, double fixed_seconds, const TempDir& dir) {
  MqttResult result;
  MosquittoServer broker(1);
  // Ramp: all three subscribed to the same broker at once, so each faces the same stream.
  {
    BillingSub billing(broker);
    Mqtt2Prometheus m2p(broker, dir, "ramp");
    for (double rate = 10000; rate <= 200000; rate *= 1.25) {
      const auto tag = std::to_string(static_cast<long>(rate));
      PlainSub plain(broker, dir.path() / ("sub-" + tag + ".txt"), true);
      std::vector<Subscriber*> subs{&plain, &billing, &m2p};
      std::vector<double> base, cpu0;
      for (auto* s : subs) {
        base.push_back(s == &plain ? 0 : s->Received());
        cpu0.push_back(CpuSeconds(s->Pid()));
      }
      const auto pub = Publish(broker, rate, static_cast<long>(rate * seconds_per_step), dir.path(),
                               "ramp-" + tag);
      std::vector<std::string> row{Count(rate), Count(pub.rate)};
      bool anyone_kept_up = false;
      for (std::size_t i = 0; i < subs.size(); ++i) {
        // Until this wait ends to catch up; what a subscriber has then is what it got.
        WaitFor([&] { return subs[i]->Received() - base[i] >= static_cast<double>(pub.sent); }, 15s,
                100ms);
        const double got = subs[i]->Received() - base[i];
        const double cpu = CpuSeconds(subs[i]->Pid()) - cpu0[i];
        row.push_back(Fmt("%.2f%%", 100 * got / static_cast<double>(pub.sent)) + " / " +
                      Fmt("%.1f us", 1e6 * cpu / static_cast<double>(pub.sent)));
        if (got == static_cast<double>(pub.sent)) {
          anyone_kept_up = true;
          result.best[subs[i]->Name()] = std::max(result.best[subs[i]->Name()], pub.rate);
        }
      }
      result.ramp_rows.push_back(row);
      std::cout << "  mqtt ramp " << row[0] << "/s: " << row[2] << ", " << row[3] << ", " << row[4]
                << "\n"
                << std::flush;
      // The publishers' (or the broker's) own limit, or nobody keeps up: higher targets say
      // nothing.
      if (pub.rate < rate * 0.9 || !anyone_kept_up) break;
    }
  }
  // Fixed 20,000 msg/s, one subscriber at a time on an otherwise idle broker: the same broker and
  // publisher load for each, so the CPU per message is the subscriber's own.
  constexpr double kFixedRate = 20000;
  for (int which = 0; which < 3; ++which) {
    std::unique_ptr<Subscriber> sub;
    if (which == 0) sub = std::make_unique<PlainSub>(broker, dir.path() / "fixed-sub.txt", true);
    if (which == 1) sub = std::make_unique<BillingSub>(broker);
    if (which == 2) sub = std::make_unique<Mqtt2Prometheus>(broker, dir, "fixed");
    // Warm-up: a connected client may not be subscribed yet (mqtt2prometheus reports connected
    // before it subscribes); the measured window starts once a first message got through.
    Publish(broker, 1000, 1000, dir.path(), "warmup-" + std::to_string(which));
    if (!WaitFor([&] { return sub->Received() > 0; }, 20s, 100ms)) {
      throw std::runtime_error(sub->Name() + " received nothing in the warm-up");
    }
    std::this_thread::sleep_for(1s);  // the warm-up drained
    MqttResult::Fixed f;
    f.rss_idle = RssMiB(sub->Pid());
    // mosquitto_sub counts by writing lines to a file: its CPU floor is measured in a second,
    // /dev/null run below; here only its zero-loss check.
    const double base = sub->Received(), cpu0 = CpuSeconds(sub->Pid());
    const auto pub = Publish(broker, kFixedRate, static_cast<long>(kFixedRate * fixed_seconds),
                             dir.path(), "fixed-" + sub->Name());
    WaitFor([&] { return sub->Received() - base >= static_cast<double>(pub.sent); }, 15s, 100ms);
    f.sent_rate = pub.rate;
    f.received_pct = 100 * (sub->Received() - base) / static_cast<double>(pub.sent);
    f.cpu_us_per_msg = 1e6 * (CpuSeconds(sub->Pid()) - cpu0) / static_cast<double>(pub.sent);
    f.rss_after = RssMiB(sub->Pid());
    result.fixed[sub->Name() + (which == 0 ? " (to a file)" : "")] = f;
  }
  {
    PlainSub sub(broker, {}, false);
    MqttResult::Fixed f;
    f.rss_idle = RssMiB(sub.Pid());
    const double cpu0 = CpuSeconds(sub.Pid());
    const auto pub = Publish(broker, kFixedRate, static_cast<long>(kFixedRate * fixed_seconds),
                             dir.path(), "fixed-devnull");
    std::this_thread::sleep_for(1s);  // let it drain what the broker still holds for it
    f.sent_rate = pub.rate;
    f.received_pct = NAN;  // not countable at /dev/null; the file run above checks the losses
    f.cpu_us_per_msg = 1e6 * (CpuSeconds(sub.Pid()) - cpu0) / static_cast<double>(pub.sent);
    f.rss_after = RssMiB(sub.Pid());
    result.fixed["mosquitto_sub"] = f;
  }
  return result;
}

// ------------------------------------------------------------------------------------------------
// Versions and machine

std::string FirstLine(const std::vector<std::string>& argv) {
  const auto r = RunCommand(argv, {}, 20s);
  std::istringstream in(r.output);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) return line;
  }
  return "?";
}

std::string Machine() {
  std::string model = "?";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  double mem_gib = 0;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    if (line.rfind("MemTotal:", 0) == 0) mem_gib = std::stod(line.substr(9)) / 1024 / 1024;
  }
  utsname u{};
  uname(&u);
  return "nproc " + std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + ", " + model + ", " +
         Fmt("%.1f GiB", mem_gib) + " RAM, Linux " + u.release + ", " +
         FirstLine({"sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"});
}

std::vector<int> ParseSizes(const std::string& text) {
  std::vector<int> sizes;
  std::istringstream in(text);
  for (std::string item; std::getline(in, item, ',');) sizes.push_back(std::stoi(item));
  return sizes;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes{100, 1000, 10000};
  int scrapes = 200;
  long big_rows = 2000000;
  double mqtt_seconds = 3, fixed_seconds = 10;
  std::string results;
  bool skip_postgres = false, skip_mqtt = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const std::string value = i + 1 < argc ? argv[i + 1] : "";
    if (flag == "--skip-postgres") {
      skip_postgres = true;
      continue;
    }
    if (flag == "--skip-mqtt") {
      skip_mqtt = true;
      continue;
    }
    ++i;
    if (flag == "--sizes")
      sizes = ParseSizes(value);
    else if (flag == "--scrapes")
      scrapes = std::stoi(value);
    else if (flag == "--big-rows")
      big_rows = std::stol(value);
    else if (flag == "--mqtt-seconds")
      mqtt_seconds = std::stod(value);
    else if (flag == "--fixed-seconds")
      fixed_seconds = std::stod(value);
    else if (flag == "--results")
      results = value;
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }

  const auto started = Clock::now();
  TempDir dir("bench-side-by-side");
  Report report;
  std::vector<Verdict> verdicts;
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::localtime(&now));

  report.Line(std::string("## ") + date +
              ", side by side (issue 7): billing-exporter, postgres_exporter, mqtt2prometheus, "
              "psql, nginx");
  report.Line();
  report.Line(
      "Command: `make bench` (`bash bench/run.sh build` runs `build/bench/side_by_side "
      "--results bench/RESULTS.md`). Written by the driver.");
  report.Line();
  report.Line("- Machine: " + Machine());
  report.Line("- " + FirstLine({BILLING_EXPORTER_PATH, "--version"}) + "; " +
              FirstLine({"/usr/bin/prometheus-postgres-exporter", "--version"}) + "; " +
              "mqtt2prometheus (Debian prometheus-mqtt-exporter " +
              FirstLine({"dpkg-query", "-W", "-f=${Version}", "prometheus-mqtt-exporter"}) + "); " +
              FirstLine({"/usr/sbin/nginx", "-v"}) + "; " +
              FirstLine({std::string(kPgBin) + "postgres", "--version"}) + "; mosquitto " +
              FirstLine({"dpkg-query", "-W", "-f=${Version}", "mosquitto"}));
  report.Line();

  try {
    if (!skip_postgres) {
      PostgresServer pg;
      // Autovacuum off: its workers would wake on the freshly generated tables and add CPU to the
      // cluster at random moments. Every tool's load is read from its own role's backends anyway.
      pg.Psql("ALTER SYSTEM SET autovacuum = off; SELECT pg_reload_conf();");
      for (const char* role : {"bench_billing", "bench_sampler", "bench_pgexp", "bench_floor"}) {
        pg.Psql(std::string("CREATE ROLE ") + role + " LOGIN PASSWORD '" + kRolePassword +
                "' IN ROLE pg_monitor");
      }
      std::vector<SizeResult> measured;
      for (int tables : sizes) {
        const std::string db = "tenant_" + std::to_string(tables);
        const auto gen_start = Clock::now();
        GenerateDatabase(pg, db, tables, big_rows);
        std::cout << "generated " << db << " (" << tables << " tables incl. one of " << big_rows
                  << " rows) in " << std::chrono::duration<double>(Clock::now() - gen_start).count()
                  << " s\n"
                  << std::flush;
        measured.push_back(MeasureSize(pg, db, tables, scrapes, dir));
        std::cout << "measured " << db << "\n" << std::flush;
      }

      report.Line("### PostgreSQL: scrapes of the same tenant database");
      report.Line();
      report.Line(
          "Each database: N user tables (N-1 small ones with a primary key, a jsonb column and 1-5 "
          "rows, plus `readings` with " +
          Count(static_cast<double>(big_rows)) +
          " rows). billing-exporter with the table cap lifted (`max_table_series: 100000`) and "
          "`SAMPLE_INTERVAL=15s`; postgres_exporter 0.11 with "
          "`bench/postgres_exporter_queries.yaml`"
          " (the same SQL) and its default collectors and settings metrics disabled "
          "(`--disable-default-metrics --disable-settings-metrics --no-collector.database "
          "--no-collector.bgwriter`), no query cache; nginx serving billing-exporter's own page "
          "(plain, and via `gzip_static` its gzip bytes). Every round scrapes each tool plain and "
          "gzip in a rotating order (" +
          std::to_string(scrapes) +
          " rounds), a new libcurl connection per request (testbed::HttpGet). CPU from "
          "/proc/<pid>/stat; PostgreSQL CPU from /proc/<pid>/schedstat (ns) of the backends of "
          "each "
          "tool's own login role (pg_stat_activity.usename), and of the psql session's backend. "
          "Exporter CPU per scrape mixes plain and gzip half and half; "
          "billing-exporter's is that of its HTTP (civetweb) threads, without the 15 s samples "
          "that "
          "fell in the loop. Its per-sample "
          "cost "
          "is measured alone first, on a second instance sampling every 500 ms with "
          "`size_max_age: 10s` (one full sample in 20, as with the defaults 15 s and 5m): the "
          "average of 20 consecutive samples after the first, exactly one of them full (a full "
          "sample measures every relation and then pg_database_size: its statements are what "
          "the psql floor runs). Throughout, a light write load inserts 10 rows into `readings` "
          "every 200 ms (the same for every tool), so `readings` is re-measured on most "
          "samples.");
      report.Line();
      std::vector<std::vector<std::string>> rows;
      for (const auto& m : measured) {
        for (std::size_t i = 0; i < m.tools.size(); ++i) {
          const Tool& t = m.tools[i];
          const double per_scrape_ms =
              1e3 * t.cpu_s / static_cast<double>(std::max<std::size_t>(t.scrapes, 1));
          std::string pg_cpu = "-";
          if (i == 0)
            pg_cpu = "0 (" + Fmt("%.2f ms per sample", m.billing_pg_cpu_per_sample_ms) + ")";
          if (i == 1) pg_cpu = Fmt("%.2f ms", m.pgexp_pg_cpu_per_scrape_ms);
          rows.push_back(
              {Count(m.tables), t.name, Count(static_cast<double>(t.scrapes)),
               Count(static_cast<double>(t.series)),
               Bytes(static_cast<double>(t.plain_bytes)) + " / " +
                   Bytes(static_cast<double>(t.gzip_bytes)),
               Fmt("%.3f", Quantile(t.plain_ms, 0.5)) + " / " +
                   Fmt("%.3f", Quantile(t.plain_ms, 0.99)),
               Fmt("%.3f", Quantile(t.gzip_ms, 0.5)) + " / " +
                   Fmt("%.3f", Quantile(t.gzip_ms, 0.99)),
               Fmt("%.3f ms", per_scrape_ms) + " / " +
                   Fmt("%.2f us",
                       t.series ? 1e3 * per_scrape_ms / static_cast<double>(t.series) : 0),
               pg_cpu, i == 2 ? "-" : Fmt("%.1f", t.rss_idle) + " / " + Fmt("%.1f", t.rss_after)});
        }
        rows.push_back({Count(m.tables), "psql floor (first-sample SQL)", "-", "-", "-",
                        Fmt("%.3f (query time)", m.floor.median_ms), "-", "-",
                        Fmt("%.2f ms per run", m.floor.pg_cpu_ms), "-"});
      }
      report.Table(
          {"tables", "tool", "scrapes (plain + gzip)", "series", "bytes plain / gzip",
           "latency ms plain p50 / p99", "gzip p50 / p99", "exporter CPU per scrape / per series",
           "PostgreSQL CPU per scrape", "RSS MiB idle / after"},
          rows);
      std::vector<std::vector<std::string>> sample_rows;
      for (const auto& m : measured) {
        sample_rows.push_back(
            {Count(m.tables), Fmt("%.1f ms", 1e3 * m.billing_sample_seconds),
             Fmt("%.2f ms", m.billing_cpu_per_sample_ms),
             Fmt("%.2f ms", m.billing_pg_cpu_per_sample_ms), Fmt("%.2f ms", m.floor.pg_cpu_ms),
             Fmt("%.0f", m.billing_loop_samples), std::to_string(m.lost_backends)});
      }
      report.Line(
          "billing-exporter's once-per-sample cost (paid every `sample_interval`, never per "
          "scrape):");
      report.Line();
      report.Table({"tables", "sample duration", "exporter CPU per sample",
                    "PostgreSQL CPU per sample", "psql floor PostgreSQL CPU",
                    "15 s samples during the scrape loop", "backends lost (should be 0)"},
                   sample_rows);

      for (const auto& m : measured) {
        const std::string where = Count(m.tables) + " tables";
        const auto& b = m.tools[0];
        const auto& p = m.tools[1];
        const auto& n = m.tools[2];
        verdicts.push_back({"scrape latency p50, billing / postgres_exporter (plain)", where,
                            Quantile(b.plain_ms, 0.5) / Quantile(p.plain_ms, 0.5), 1.0 / 50});
        verdicts.push_back({"scrape latency p50, billing / postgres_exporter (gzip)", where,
                            Quantile(b.gzip_ms, 0.5) / Quantile(p.gzip_ms, 0.5), 1.0 / 50});
        verdicts.push_back({"scrape latency p50, billing / nginx same bytes (plain)", where,
                            Quantile(b.plain_ms, 0.5) / Quantile(n.plain_ms, 0.5), 2});
        verdicts.push_back({"scrape latency p50, billing / nginx same bytes (gzip)", where,
                            Quantile(b.gzip_ms, 0.5) / Quantile(n.gzip_ms, 0.5), 2});
        verdicts.push_back({"PostgreSQL CPU per sample, billing / psql floor", where,
                            m.billing_pg_cpu_per_sample_ms / m.floor.pg_cpu_ms, 1.2});
        verdicts.push_back({"PostgreSQL CPU, billing per sample / postgres_exporter per scrape",
                            where, m.billing_pg_cpu_per_sample_ms / m.pgexp_pg_cpu_per_scrape_ms,
                            1.0 / 3});
        if (m.tables >= 10000) {
          verdicts.push_back({"RSS after sustained scraping, billing / postgres_exporter", where,
                              b.rss_after / p.rss_after, 0.5});
          verdicts.push_back(
              {"RSS idle, billing / postgres_exporter", where, b.rss_idle / p.rss_idle, 0.5});
        }
      }
    }

    if (!skip_mqtt) {
      const auto mqtt = MeasureMqtt(mqtt_seconds, fixed_seconds, dir);
      report.Line("### MQTT: zero-loss rate and CPU per message");
      report.Line();
      report.Line(
          "One private Mosquitto 2.0.11; " + std::to_string(kPublishers) +
          " device-simulator publishers, QoS 0, 500 device topics, payloads up to 200 bytes, " +
          Fmt("%.0f", mqtt_seconds) +
          " s per step. Ramp: billing-exporter (`#`), mqtt2prometheus (`devices/#`, three gauges "
          "per device, counted by its `received_messages`) and `mosquitto_sub -t 'devices/#'` "
          "(to a file, lines counted) subscribed at once. Cells: received / subscriber CPU per "
          "message sent.");
      report.Line();
      report.Table({"target/s", "sent/s", "mosquitto_sub", "billing-exporter", "mqtt2prometheus"},
                   mqtt.ramp_rows);
      auto best = [&](const std::string& name) {
        return mqtt.best.count(name) ? mqtt.best.at(name) : 0.0;
      };
      report.Line("Highest zero-loss rate: mosquitto_sub " + Count(best("mosquitto_sub")) +
                  "/s, billing-exporter " + Count(best("billing-exporter")) +
                  "/s, mqtt2prometheus " + Count(best("mqtt2prometheus")) + "/s.");
      report.Line();
      report.Line("Fixed 20,000 messages/s for " + Fmt("%.0f", fixed_seconds) +
                  " s, one subscriber at a time on the same broker:");
      report.Line();
      std::vector<std::vector<std::string>> fixed_rows;
      for (const auto& [name, f] : mqtt.fixed) {
        fixed_rows.push_back(
            {name, Count(f.sent_rate),
             std::isnan(f.received_pct) ? "(/dev/null)" : Fmt("%.2f%%", f.received_pct),
             Fmt("%.2f", f.cpu_us_per_msg),
             Fmt("%.1f", f.rss_idle) + " / " + Fmt("%.1f", f.rss_after)});
      }
      report.Table({"subscriber", "sent/s", "received", "CPU us/msg", "RSS MiB idle / after"},
                   fixed_rows);
      verdicts.push_back(
          {"MQTT zero-loss rate, billing / mosquitto_sub", "ramp",
           best("mosquitto_sub") > 0 ? best("billing-exporter") / best("mosquitto_sub") : 0, 0.95,
           true});
      const double b = mqtt.fixed.at("billing-exporter").cpu_us_per_msg;
      verdicts.push_back({"MQTT CPU per message, billing / mosquitto_sub > /dev/null", "20,000/s",
                          b / mqtt.fixed.at("mosquitto_sub").cpu_us_per_msg, 1.5});
      verdicts.push_back({"MQTT CPU per message, billing / mqtt2prometheus", "20,000/s",
                          b / mqtt.fixed.at("mqtt2prometheus").cpu_us_per_msg, 1.0 / 5});
    }
  } catch (const std::exception& e) {
    std::cerr << "side_by_side: " << e.what() << "\n";
    return 1;
  }

  report.Line("### Ratios against issue 7's targets");
  report.Line();
  std::vector<std::vector<std::string>> verdict_rows;
  for (const auto& v : verdicts) verdict_rows.push_back(VerdictRow(v));
  report.Table({"target", "where", "ratio", "target", "verdict"}, verdict_rows);
  report.Line(Fmt("Suite wall time: %.0f s.",
                  std::chrono::duration<double>(Clock::now() - started).count()));
  report.Line();

  if (!results.empty()) {
    std::ofstream out(results, std::ios::app);
    out << "\n" << report.text();
  }
  return 0;
}
