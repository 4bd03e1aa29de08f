#include "postgres_collector.h"

#include <sys/socket.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <pqxx/pqxx>
#include <thread>

#include "billing/common/log.h"
#include "postgres_queries.h"

namespace billing::exporter {

using billing::common::Log;
using billing::common::LogLevel;
namespace {

std::int64_t NonNegative(std::int64_t value) { return value < 0 ? 0 : value; }

// Shuts the socket down if the guarded call outlives its deadline: libpq then
// fails the blocked read at once, which statement_timeout cannot do when the
// server itself is frozen.
class SocketWatchdog {
 public:
  SocketWatchdog(int socket, std::chrono::milliseconds timeout)
      : thread_([this, socket, timeout] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_for(lock, timeout, [this] { return done_; }) && socket >= 0) {
            ::shutdown(socket, SHUT_RDWR);
          }
        }) {}
  ~SocketWatchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  SocketWatchdog(const SocketWatchdog&) = delete;
  SocketWatchdog& operator=(const SocketWatchdog&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

std::string Seconds(std::chrono::milliseconds d) {
  // libpq's connect_timeout is whole seconds and treats values below 2 as 2.
  return std::to_string(std::max<std::int64_t>(2, (d.count() + 999) / 1000));
}

}  // namespace

PgSession::PgSession(std::string component, const PostgresConfig& config,
                     std::chrono::milliseconds query_timeout)
    : component_(std::move(component)),
      config_(config),
      query_timeout_(query_timeout),
      backoff_(std::chrono::milliseconds(500), config.reconnect_backoff_max) {}

PgSession::~PgSession() = default;

std::string PgSession::Connect() {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) {
    return "not connected; next attempt in " +
           std::to_string(
               std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - now).count()) +
           "ms";
  }
  // The session settings travel as startup options, so that they hold on any connection libpqxx
  // opens for us (it can silently reopen a lost one), and appear in no SQL we send.
  const std::string timeout = std::to_string(query_timeout_.count());
  std::string options = "-c default_transaction_read_only=on -c statement_timeout=" + timeout +
                        " -c lock_timeout=" + timeout;
  if (const auto user_options = config_.url->Option("options"); !user_options.empty()) {
    options = user_options + " " + options;
  }
  const auto conninfo = config_.url->ConnectionString({
      {"application_name", "billing-exporter"},
      {"connect_timeout", Seconds(config_.connect_timeout)},
      {"keepalives", "1"},
      {"keepalives_idle", "30"},
      {"tcp_user_timeout",
       std::to_string(config_.connect_timeout.count() + query_timeout_.count())},
      {"options", options},
  });
  try {
    auto connection = std::make_unique<pqxx::connection>(conninfo);
    connection_ = std::move(connection);
    backoff_.Reset();
    Log(LogLevel::kInfo, component_, "connected to " + config_.url->Redacted());
    return "";
  } catch (const std::exception& e) {
    next_attempt_ = std::chrono::steady_clock::now() + backoff_.NextDelay();
    return "cannot connect to " + config_.url->Redacted() + ": " +
           Scrub(e.what(), config_.url->password());
  }
}

std::string PgSession::RunErased(const std::function<void(pqxx::connection&)>& work) {
  if (!connection_) {
    if (auto error = Connect(); !error.empty()) return error;
  }
  try {
    // The watchdog allows the server's own timeout to fire first, plus time for
    // the answer.
    SocketWatchdog watchdog(connection_->sock(), query_timeout_ + std::chrono::seconds(2));
    work(*connection_);
    return "";
  } catch (const std::exception& e) {
    std::string error = Scrub(e.what(), config_.url->password());
    if (auto newline = error.find('\n'); newline != std::string::npos) error.resize(newline);
    const bool broken =
        dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr || !connection_->is_open();
    if (broken) {
      connection_.reset();
      next_attempt_ = std::chrono::steady_clock::now() + backoff_.NextDelay();
      Log(LogLevel::kWarn, component_, "connection lost: " + error);
    }
    return error;
  }
}

CatalogSample ReadCatalog(pqxx::connection& connection) {
  CatalogSample sample;
  pqxx::read_transaction tx(connection);
  const auto db = tx.exec(kDatabaseQuery);
  if (db.size() != 1)
    throw std::runtime_error("pg_stat_database has no row for the current database");
  sample.database = db[0][0].as<std::string>();
  sample.database_size_bytes = NonNegative(db[0][1].as<std::int64_t>());
  if (!db[0][2].is_null()) sample.stats_reset_unix_seconds = db[0][2].as<double>();
  sample.postmaster_start_unix_seconds = db[0][3].as<double>();

  const auto rows = tx.exec(kTablesQuery);
  sample.tables.reserve(rows.size());
  for (const auto& row : rows) {
    sample.tables.push_back(TableStats{
        .schema = row[0].as<std::string>(),
        .table = row[1].as<std::string>(),
        .live_rows = NonNegative(row[2].as<std::int64_t>()),
        .rows_inserted = NonNegative(row[3].as<std::int64_t>()),
        .table_bytes = NonNegative(row[4].as<std::int64_t>()),
        .index_bytes = NonNegative(row[5].as<std::int64_t>()),
        .toast_bytes = NonNegative(row[6].as<std::int64_t>()),
    });
  }
  tx.commit();
  return sample;
}

PostgresCatalogCollector::PostgresCatalogCollector(const PostgresConfig& config,
                                                   std::chrono::milliseconds interval)
    : config_(config),
      interval_(interval),
      selection_{config.include_schemas, config.exclude_schemas, config.include_tables,
                 config.exclude_tables, config.max_table_series},
      session_("postgres", config, config.statement_timeout) {}

SampleResult PostgresCatalogCollector::Sample() {
  CatalogSample sample;
  auto error = session_.Run([&](pqxx::connection& c) { sample = ReadCatalog(c); });
  if (!error.empty()) return SampleResult{DownFamilies(), false, std::move(error)};
  return SampleResult{CatalogFamilies(sample, selection_), true, ""};
}

PostgresExactCountCollector::PostgresExactCountCollector(const PostgresConfig& config)
    : config_(config), session_("postgres_exact_count", config, config.exact_count_timeout) {}

SampleResult PostgresExactCountCollector::Sample() {
  std::vector<ExactCount> counts;
  std::string errors;
  for (const auto& table : config_.exact_count_tables) {
    auto error = session_.Run([&](pqxx::connection& c) {
      pqxx::read_transaction tx(c);
      // Both parts quoted by the server's own rules: config text never becomes
      // SQL syntax.
      const auto rows = tx.exec("SELECT count(*) FROM " + tx.quote_name(table.schema) + "." +
                                tx.quote_name(table.table));
      counts.push_back(ExactCount{table.schema, table.table, rows[0][0].as<std::int64_t>()});
      tx.commit();
    });
    if (!error.empty()) {
      errors += (errors.empty() ? "" : "; ") + table.schema + "." + table.table + ": " + error;
    }
  }
  return SampleResult{ExactCountFamilies(counts), errors.empty(), std::move(errors)};
}

}  // namespace billing::exporter
