// Issue 14's scale run of the reconciler: N customers created in a burst against the Kubernetes API
// test double (tests/support/kube_api_double.h) answering every request after 5-20 ms, the real
// `provisioner serve` and a real PostgreSQL. The double plays the workload controllers: it marks
// every Deployment and StatefulSet ready a moment after it is applied. For each N it measures
//  - the time from the first signup to every customer Ready (the signups themselves included:
//    each hashes a password with Argon2id);
//  - the API requests per customer until then (applies and reads);
//  - in the steady state that follows, the API requests per Ready customer per resync interval;
//  - the provisioner's peak resident memory (VmHWM) and its PostgreSQL connections (the most seen).
// Prints one table and, with --results, appends it to a markdown file (bench/RESULTS.md).
//
//   build/bench/reconciler_scale [--customers 100,1000] [--workers 4] [--resync-seconds 10]
//                                [--steady-resyncs 3] [--results FILE]
//
// Nothing here is a test: no figure is asserted and the exit status only reports broken setup or
// a run that did not reach all-Ready within its bound.
#include <sys/utsname.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kube_api_double.h"
#include "testbed.h"

namespace billing::testbed {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kAdminToken[] = "scale-admin-token-0123456789";
constexpr char kPassword[] = "correct horse battery staple 42";
// Signups at once: a burst from a few clients, as an operator's import script would send.
constexpr int kSignupClients = 8;
// However slow the machine, one size never runs longer than this.
constexpr auto kRunBound = 30min;

struct Options {
  std::vector<int> customers = {100, 1000};
  int workers = 4;
  int resync_seconds = 10;
  int steady_resyncs = 3;
  std::string results;
};

struct Figures {
  int customers = 0;
  double signup_seconds = 0;
  double all_ready_seconds = 0;
  double requests_per_customer = 0;
  double applies_per_customer = 0;
  double reads_per_customer = 0;
  double steady_requests_per_customer_per_resync = 0;
  long signup_rss_kib = 0;  // right after the last signup was answered
  long peak_rss_kib = 0;
  long steady_rss_kib = 0;
  int max_database_connections = 0;
};

std::vector<int> ParseList(const std::string& text) {
  std::vector<int> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) values.push_back(std::stoi(item));
  return values;
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + ": needs a value");
      return argv[++i];
    };
    if (arg == "--customers") {
      options.customers = ParseList(value());
    } else if (arg == "--workers") {
      options.workers = std::stoi(value());
    } else if (arg == "--resync-seconds") {
      options.resync_seconds = std::stoi(value());
    } else if (arg == "--steady-resyncs") {
      options.steady_resyncs = std::stoi(value());
    } else if (arg == "--results") {
      options.results = value();
    } else {
      throw std::invalid_argument(arg + ": unknown; see the comment at the top of the source");
    }
  }
  return options;
}

// A field of /proc/<pid>/status in KiB ("VmHWM", "VmRSS"); 0 if it cannot be read.
long ProcStatusKib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field + ":")) return std::stol(line.substr(field.size() + 1));
  }
  return 0;
}

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

class ScaleRun {
 public:
  ScaleRun(PostgresServer& postgres, const std::filesystem::path& keys, const Options& options)
      : postgres_(postgres), keys_(keys), options_(options) {}

  Figures Run(int customers) {
    Figures figures;
    figures.customers = customers;
    const std::string database = "scale_" + std::to_string(customers);
    postgres_.CreateDatabase(database);
    TempDir dir("reconciler-scale");
    KubeApiDouble kube;
    kube.SetResponseDelay(5ms, 20ms);
    kube.WriteKubeconfig(dir.path() / "kubeconfig");
    const int port = FreePort();
    const int health_port = FreePort();
    Process provisioner(Process::Options{
        {PROVISIONER_PATH, "serve", "--listen", "127.0.0.1:" + std::to_string(port),
         "--health-listen", "127.0.0.1:" + std::to_string(health_port), "--workers",
         std::to_string(options_.workers)},
        {{"PROVISIONER_ADMIN_TOKEN", kAdminToken},
         {"DATABASE_URL", postgres_.Url(database)},
         {"LICENSE_SIGNING_KEY_FILE", (keys_ / "signing-key.pem").string()},
         {"PROVISIONER_ENCRYPTION_KEY_FILE", (keys_ / "encryption.key").string()},
         {"PROVISIONER_TOKEN_KEY_FILE", (keys_ / "token.key").string()},
         {"PROVISIONER_DOMAIN_BASE", "iot.example.com"},
         {"KUBECONFIG", (dir.path() / "kubeconfig").string()},
         {"PROVISIONER_CHART_DIR",
          std::string(BILLING_SOURCE_DIR) + "/manifests/charts/customer-instance"},
         {"PROVISIONER_RESYNC_INTERVAL", std::to_string(options_.resync_seconds) + "s"},
         // The operator's import is not the abuse the signup limits are for.
         {"PROVISIONER_SIGNUP_BURST", std::to_string(customers)},
         {"PROVISIONER_SIGNUP_RATE_PER_MINUTE", std::to_string(customers)},
         {"PROVISIONER_DEPLOYMENTS_PER_HOUR", std::to_string(customers)}},
        {"PROMETHEUS_URL", "PROVISIONER_SMTP_URL"},
        dir.path() / "provisioner.log",
        std::nullopt});
    const auto answering = [&] {
      const auto healthz = HttpGet("http://127.0.0.1:" + std::to_string(health_port) + "/healthz");
      return !provisioner.Running() || healthz.status == 200;
    };
    if (!WaitFor(answering, 30s) || !provisioner.Running()) {
      throw std::runtime_error("the provisioner did not start:\n" + provisioner.Log());
    }

    // The controllers: whatever workload was applied is ready a moment later.
    std::atomic<bool> done{false};
    std::thread controllers([&] {
      while (!done) {
        kube.MarkAllWorkloadsReady();
        std::this_thread::sleep_for(200ms);
      }
    });
    struct JoinControllers {
      std::atomic<bool>& done;
      std::thread& thread;
      ~JoinControllers() {
        done = true;
        thread.join();
      }
    } join_controllers{done, controllers};

    // The most connections to the store seen, sampled while everything below runs.
    std::atomic<int> max_connections{0};
    const auto sample_connections = [&] {
      const auto count = Trimmed(postgres_.Psql(
          "SELECT count(*) FROM pg_stat_activity WHERE datname = '" + database + "'"));
      // psql itself is one of them.
      const int connections = std::max(0, std::stoi(count) - 1);
      max_connections = std::max(max_connections.load(), connections);
    };
    const auto ready = [&] {
      return std::stoi(Trimmed(
          postgres_.Psql("SELECT count(*) FROM deployments WHERE phase = 'Ready'", database)));
    };

    const auto started = Clock::now();
    std::atomic<int> next{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kSignupClients; ++c) {
      clients.emplace_back([&] {
        for (int i = next++; i < customers; i = next++) {
          const nlohmann::json body = {{"email", "scale" + std::to_string(i) + "@example.com"},
                                       {"password", kPassword},
                                       {"company_name", "Scale " + std::to_string(i)}};
          const auto response = HttpRequest(
              "POST", "http://127.0.0.1:" + std::to_string(port) + "/api/customers/signup",
              body.dump(),
              {"Content-Type: application/json",
               "Expect:", std::string("Authorization: Bearer ") + kAdminToken},
              60s);
          if (response.status != 201) {
            if (failed++ == 0) {
              std::cerr << "signup " << i << ": " << response.status << " " << response.body
                        << response.error << "\n";
            }
          }
        }
      });
    }
    for (auto& client : clients) client.join();
    figures.signup_seconds = std::chrono::duration<double>(Clock::now() - started).count();
    if (failed > 0) throw std::runtime_error(std::to_string(failed) + " signups failed");
    figures.signup_rss_kib = ProcStatusKib(provisioner.pid(), "VmRSS");

    const bool all_ready = WaitFor(
        [&] {
          sample_connections();
          return ready() == customers;
        },
        std::chrono::duration_cast<std::chrono::milliseconds>(kRunBound), 500ms);
    figures.all_ready_seconds = std::chrono::duration<double>(Clock::now() - started).count();
    if (!all_ready) {
      throw std::runtime_error(std::to_string(ready()) + " of " + std::to_string(customers) +
                               " customers Ready within the bound; log:\n" +
                               provisioner.Log().substr(0, 4000));
    }
    const int requests = kube.CountRequests("", "");
    figures.requests_per_customer = static_cast<double>(requests) / customers;
    figures.applies_per_customer = static_cast<double>(kube.CountRequests("PATCH", "")) / customers;
    figures.reads_per_customer = static_cast<double>(kube.CountRequests("GET", "")) / customers;

    // The steady state: every customer Ready, nothing to change.
    const auto steady = std::chrono::seconds(options_.resync_seconds * options_.steady_resyncs);
    const int before = kube.CountRequests("", "");
    const auto steady_end = Clock::now() + steady;
    while (Clock::now() < steady_end) {
      sample_connections();
      std::this_thread::sleep_for(1s);
    }
    const int after = kube.CountRequests("", "");
    figures.steady_requests_per_customer_per_resync =
        static_cast<double>(after - before) / customers / options_.steady_resyncs;
    figures.steady_rss_kib = ProcStatusKib(provisioner.pid(), "VmRSS");
    figures.peak_rss_kib = ProcStatusKib(provisioner.pid(), "VmHWM");
    figures.max_database_connections = max_connections;
    if (ready() != customers) throw std::runtime_error("customers left Ready in the steady state");
    provisioner.Stop(SIGTERM);
    return figures;
  }

 private:
  PostgresServer& postgres_;
  std::filesystem::path keys_;
  const Options& options_;
};

std::string Table(const std::vector<Figures>& rows, const Options& options) {
  std::ostringstream out;
  char line[512];
  out << "| customers | signups done (s) | all Ready (s) | API requests / customer to Ready "
         "(applies, reads) | steady: requests / customer / resync | RSS after signups (MiB) | "
         "peak RSS (MiB) | steady RSS (MiB) | PostgreSQL connections (max) |\n"
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line,
                  "| %d | %.1f | %.1f | %.1f (%.1f, %.1f) | %.2f | %.1f | %.1f | %.1f | %d |\n",
                  r.customers, r.signup_seconds, r.all_ready_seconds, r.requests_per_customer,
                  r.applies_per_customer, r.reads_per_customer,
                  r.steady_requests_per_customer_per_resync, r.signup_rss_kib / 1024.0,
                  r.peak_rss_kib / 1024.0, r.steady_rss_kib / 1024.0, r.max_database_connections);
    out << line;
  }
  if (rows.size() >= 2) {
    const auto& small = rows.front();
    const auto& large = rows.back();
    std::snprintf(line, sizeof line,
                  "\nFrom %d to %d customers (x%.0f): time to all Ready x%.1f, peak RSS x%.2f, "
                  "steady RSS x%.2f, requests per customer x%.2f, connections %d -> %d.\n",
                  small.customers, large.customers,
                  static_cast<double>(large.customers) / small.customers,
                  large.all_ready_seconds / small.all_ready_seconds,
                  static_cast<double>(large.peak_rss_kib) / small.peak_rss_kib,
                  static_cast<double>(large.steady_rss_kib) / small.steady_rss_kib,
                  large.requests_per_customer / small.requests_per_customer,
                  small.max_database_connections, large.max_database_connections);
    out << line;
  }
  out << "\n"
      << options.workers << " reconciler workers, resync every " << options.resync_seconds
      << " s (steady state measured over " << options.steady_resyncs
      << " resyncs), every API answer after 5-20 ms.\n";
  return out.str();
}

int Main(int argc, char** argv) {
  const Options options = ParseOptions(argc, argv);
  PostgresServer postgres;
  TempDir keys("reconciler-scale-keys");
  for (const auto& command : std::vector<std::vector<std::string>>{
           {"openssl", "genpkey", "-algorithm", "ed25519", "-out",
            (keys.path() / "signing-key.pem").string()},
           {"openssl", "rand", "-hex", "-out", (keys.path() / "encryption.key").string(), "32"},
           {"openssl", "rand", "-hex", "-out", (keys.path() / "token.key").string(), "32"}}) {
    const auto made = RunCommand(command);
    if (made.exit_code != 0) throw std::runtime_error(command[0] + ": " + made.output);
  }
  ScaleRun run(postgres, keys.path(), options);
  std::vector<Figures> rows;
  for (const int customers : options.customers) {
    std::cerr << "reconciler_scale: " << customers << " customers...\n";
    rows.push_back(run.Run(customers));
  }
  const std::string table = Table(rows, options);
  std::cout << table;
  if (!options.results.empty()) {
    std::ofstream out(options.results, std::ios::app);
    const auto now = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    utsname machine{};
    uname(&machine);
    out << "\n## " << date
        << ", issue 14: the reconciler at scale against the Kubernetes API test double\n\n"
        << "`build/bench/reconciler_scale --results bench/RESULTS.md` (from `make bench`) on "
        << machine.machine << ", " << std::thread::hardware_concurrency() << " cores, "
        << machine.release << ".\n\n"
        << table;
  }
  return 0;
}

}  // namespace
}  // namespace billing::testbed

int main(int argc, char** argv) {
  try {
    return billing::testbed::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "reconciler_scale: " << e.what() << "\n";
    return 1;
  }
}
