// Issue 14's scale run of the reconciler: N customers sign up in a burst on a public platform
// (a real SMTP server on loopback receives the verification mails; every address follows its
// link), against the Kubernetes API test double (tests/support/kube_api_double.h) answering every
// request after 5-20 ms, with the real `provisioner serve` and a real PostgreSQL. The double plays
// the workload controllers: it marks every Deployment and StatefulSet ready a moment after it is
// applied. For each N it measures
//  - the time from the first signup to every signup answered (each hashes a password with
//    Argon2id), to every link followed, and to every customer Ready;
//  - the API requests per customer until then (applies and reads);
//  - in the steady state that follows, the API requests per Ready customer per resync interval;
//  - the provisioner's resident memory after the signups, at its peak (VmHWM) and in the steady
//    state, and its PostgreSQL connections (the most seen).
// Prints one table and, with --results, appends it to a markdown file (bench/RESULTS.md).
//
//   build/bench/reconciler_scale [--customers 100,1000] [--workers 4] [--resync-seconds 30]
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
#include <functional>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
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

constexpr char kPassword[] = "correct horse battery staple 42";
// Signups at once: a burst from a few clients, as an operator's import script would send.
constexpr int kSignupClients = 8;
// However slow the machine, one size never runs longer than this.
constexpr auto kRunBound = 30min;

struct Options {
  std::vector<int> customers = {100, 1000};
  int workers = 4;
  int resync_seconds = 30;  // the product's default (PROVISIONER_RESYNC_INTERVAL)
  int steady_resyncs = 3;
  std::string results;
};

struct Figures {
  int customers = 0;
  double signup_seconds = 0;    // every signup answered
  double verified_seconds = 0;  // every mailed link followed
  int retries = 0;              // answers 503/429 retried after their Retry-After
  double all_ready_seconds = 0;
  double requests_per_customer = 0;
  double applies_per_customer = 0;
  double reads_per_customer = 0;
  double steady_requests_per_customer_per_resync = 0;
  double steady_requests_per_second = 0;
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

class ScaleRun {
 public:
  ScaleRun(PostgresServer& postgres, const std::filesystem::path& keys, const Options& options)
      : postgres_(postgres), keys_(keys), options_(options) {}

  Figures Run(int customers) {
    retries_ = 0;
    Figures figures;
    figures.customers = customers;
    const std::string database = "scale_" + std::to_string(customers);
    postgres_.CreateDatabase(database);
    TempDir dir("reconciler-scale");
    SmtpServer smtp;
    KubeApiDouble kube;
    kube.SetResponseDelay(5ms, 20ms);
    kube.WriteKubeconfig(dir.path() / "kubeconfig");
    const int port = FreePort();
    const int health_port = FreePort();
    Process provisioner(Process::Options{
        {PROVISIONER_PATH, "serve", "--listen", "127.0.0.1:" + std::to_string(port),
         "--health-listen", "127.0.0.1:" + std::to_string(health_port), "--workers",
         std::to_string(options_.workers)},
        {{"PROVISIONER_ADMIN_TOKEN", "scale-admin-token-0123456789"},  // required, unused here
         {"DATABASE_URL", postgres_.Url(database)},
         {"LICENSE_SIGNING_KEY_FILE", (keys_ / "signing-key.pem").string()},
         {"PROVISIONER_ENCRYPTION_KEY_FILE", (keys_ / "encryption.key").string()},
         {"PROVISIONER_TOKEN_KEY_FILE", (keys_ / "token.key").string()},
         {"PROVISIONER_DOMAIN_BASE", "iot.example.com"},
         {"KUBECONFIG", (dir.path() / "kubeconfig").string()},
         {"PROVISIONER_CHART_DIR",
          std::string(BILLING_SOURCE_DIR) + "/manifests/charts/customer-instance"},
         {"PROVISIONER_RESYNC_INTERVAL", std::to_string(options_.resync_seconds) + "s"},
         // Public signup: each address verified through the link mailed to it.
         {"PROVISIONER_SMTP_URL", smtp.Url()},
         {"PROVISIONER_MAIL_FROM", "billing@iot.example.com"},
         {"PROVISIONER_PUBLIC_URL", "https://signup.iot.example.com"},
         // All from one address, and all at once: the limits meant for abuse are opened.
         {"PROVISIONER_SIGNUP_BURST", std::to_string(customers)},
         {"PROVISIONER_SIGNUP_RATE_PER_MINUTE", std::to_string(customers)},
         {"PROVISIONER_MAX_UNVERIFIED_SIGNUPS", std::to_string(customers)},
         {"PROVISIONER_DEPLOYMENTS_PER_HOUR", std::to_string(customers)}},
        {"PROMETHEUS_URL"},
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
      const auto count = postgres_.Psql("SELECT count(*) FROM pg_stat_activity WHERE datname = '" +
                                        database + "'");
      // psql itself is one of them.
      const int connections = std::max(0, std::stoi(count) - 1);
      max_connections = std::max(max_connections.load(), connections);
    };
    const auto ready = [&] {
      return std::stoi(
          postgres_.Psql("SELECT count(*) FROM deployments WHERE phase = 'Ready'", database));
    };

    const auto started = Clock::now();
    const std::string api = "http://127.0.0.1:" + std::to_string(port) + "/api/customers/";
    for (const auto& failure : Burst(customers, [&](int i) {
           const nlohmann::json body = {{"email", "scale" + std::to_string(i) + "@example.com"},
                                        {"password", kPassword},
                                        {"company_name", "Scale " + std::to_string(i)}};
           return Post(api + "signup", body, 202);
         })) {
      throw std::runtime_error("signup: " + failure);
    }
    figures.signup_seconds = std::chrono::duration<double>(Clock::now() - started).count();
    figures.signup_rss_kib = ProcStatusKib(provisioner.pid(), "VmRSS");
    // Every address follows the link of its mail.
    if (!WaitFor([&] { return smtp.Messages().size() >= static_cast<std::size_t>(customers); },
                 std::chrono::duration_cast<std::chrono::milliseconds>(kRunBound), 500ms)) {
      throw std::runtime_error(std::to_string(smtp.Messages().size()) + " of " +
                               std::to_string(customers) + " mails arrived");
    }
    std::vector<std::string> tokens;
    static const std::regex link("/verify-email\\?token=([A-Za-z0-9_-]+)");
    for (const auto& mail : smtp.Messages()) {
      std::smatch found;
      if (std::regex_search(mail, found, link)) tokens.push_back(found[1]);
    }
    if (tokens.size() != static_cast<std::size_t>(customers)) {
      throw std::runtime_error(std::to_string(tokens.size()) + " verification links in " +
                               std::to_string(customers) + " mails");
    }
    for (const auto& failure : Burst(customers, [&](int i) {
           return Post(api + "verify", {{"token", tokens[static_cast<std::size_t>(i)]}}, 201);
         })) {
      throw std::runtime_error("verify: " + failure);
    }
    figures.verified_seconds = std::chrono::duration<double>(Clock::now() - started).count();
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
    figures.steady_requests_per_second =
        static_cast<double>(after - before) / std::chrono::duration<double>(steady).count();
    figures.steady_rss_kib = ProcStatusKib(provisioner.pid(), "VmRSS");
    figures.peak_rss_kib = ProcStatusKib(provisioner.pid(), "VmHWM");
    figures.max_database_connections = max_connections;
    figures.retries = retries_;
    if (ready() != customers) throw std::runtime_error("customers left Ready in the steady state");
    provisioner.Stop(SIGTERM);
    return figures;
  }

 private:
  // `request(i)` for i in [0, count) from kSignupClients clients at once, as a burst of people
  // (or an import script) would send them; the failures, described.
  std::vector<std::string> Burst(int count, const std::function<std::string(int)>& request) {
    std::atomic<int> next{0};
    std::mutex mutex;
    std::vector<std::string> failures;
    std::vector<std::thread> clients;
    for (int c = 0; c < kSignupClients; ++c) {
      clients.emplace_back([&] {
        for (int i = next++; i < count; i = next++) {
          auto failure = request(i);
          if (failure.empty()) continue;
          std::lock_guard lock(mutex);
          failures.push_back(std::move(failure));
        }
      });
    }
    for (auto& client : clients) client.join();
    return failures;
  }

  // POSTs `body`; a 503 or 429 is retried after its Retry-After, as a client should. Empty when
  // the answer was `expected`, else what it was.
  std::string Post(const std::string& url, const nlohmann::json& body, long expected) {
    for (int attempt = 0; attempt < 30; ++attempt) {
      const auto response =
          HttpRequest("POST", url, body.dump(), {"Content-Type: application/json", "Expect:"}, 60s);
      if (response.status == expected) return "";
      if (response.status != 503 && response.status != 429) {
        return std::to_string(response.status) + " " + response.body + response.error;
      }
      ++retries_;
      const auto after = response.headers.find("retry-after");
      const int seconds = after == response.headers.end() ? 1 : std::stoi(after->second);
      std::this_thread::sleep_for(std::chrono::seconds(std::clamp(seconds, 1, 5)));
    }
    return "still refused after 30 attempts";
  }

  std::atomic<int> retries_{0};
  PostgresServer& postgres_;
  std::filesystem::path keys_;
  const Options& options_;
};

std::string Table(const std::vector<Figures>& rows, const Options& options) {
  std::ostringstream out;
  char line[512];
  out << "| customers | signups answered (s) | links followed (s) | all Ready (s) | 503/429 "
         "retried | API requests / customer to Ready (applies, reads) | steady: requests / "
         "customer / resync (per second) | RSS after signups (MiB) | peak RSS (MiB) | steady "
         "RSS (MiB) | PostgreSQL connections (max) |\n"
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    std::snprintf(
        line, sizeof line,
        "| %d | %.1f | %.1f | %.1f | %d | %.1f (%.1f, %.1f) | %.2f (%.0f) | %.1f | %.1f | %.1f "
        "| %d |\n",
        r.customers, r.signup_seconds, r.verified_seconds, r.all_ready_seconds, r.retries,
        r.requests_per_customer, r.applies_per_customer, r.reads_per_customer,
        r.steady_requests_per_customer_per_resync, r.steady_requests_per_second,
        r.signup_rss_kib / 1024.0, r.peak_rss_kib / 1024.0, r.steady_rss_kib / 1024.0,
        r.max_database_connections);
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
