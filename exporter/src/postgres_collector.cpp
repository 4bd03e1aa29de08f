#include "postgres_collector.h"

#include <sys/socket.h>

#include <condition_variable>
#include <cstring>
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
                     std::chrono::milliseconds query_timeout, int statements_per_run)
    : component_(std::move(component)),
      config_(config),
      query_timeout_(query_timeout),
      statements_per_run_(statements_per_run),
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
    // The watchdog allows the server's own timeout to fire first (on every statement of the
    // run), plus time for the answer.
    SocketWatchdog watchdog(connection_->sock(),
                            query_timeout_ * statements_per_run_ + std::chrono::seconds(2));
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

namespace {

// A 64-bit mix of the values whose change means a table's files may have changed size
// (splitmix64 finaliser per value): equal inputs give equal signatures, and a collision of
// different inputs is a 2^-64 chance that the next full sample bounds anyway.
class Signature {
 public:
  void Add(std::uint64_t value) {
    std::uint64_t z = value + 0x9e3779b97f4a7c15ULL + state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    state_ = z ^ (z >> 31);
  }
  void Add(double value) {
    std::uint64_t bits = 0;
    static_assert(sizeof bits == sizeof value);
    std::memcpy(&bits, &value, sizeof bits);
    Add(bits);
  }
  std::uint64_t value() const { return state_; }

 private:
  std::uint64_t state_ = 0;
};

// The oid[] parameter of kRelationSizesQuery: digits and commas only.
std::string OidArray(const std::vector<std::uint32_t>& oids) {
  std::string text = "{";
  for (std::size_t i = 0; i < oids.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(oids[i]);
  }
  return text + "}";
}

constexpr const char* kDatabaseState = "billing_database_state";
constexpr const char* kRelationState = "billing_relation_state";
constexpr const char* kRelationSizes = "billing_relation_sizes";
constexpr const char* kDatabaseSize = "billing_database_size";
constexpr int kCatalogStatements = 4;  // ReadCatalog's, each under statement_timeout

// The database's row: its name, statistics reset and postmaster start.
void ReadDatabaseState(pqxx::read_transaction& tx, CatalogSample& sample) {
  const auto db = tx.exec_prepared(kDatabaseState);
  if (db.size() != 1) throw std::runtime_error("pg_database has no row for the current database");
  sample.database = db[0][0].as<std::string>();
  if (!db[0][1].is_null()) sample.stats_reset_unix_seconds = db[0][1].as<double>();
  sample.postmaster_start_unix_seconds = db[0][2].as<double>();
}

// Every relation's counters and the signature that tells whether its size may have moved.
std::vector<TableState> ReadRelationStates(pqxx::read_transaction& tx,
                                           const TableSelection& selection,
                                           const CatalogSample& sample) {
  const auto rows = tx.exec_prepared(kRelationState);
  std::vector<TableState> tables;
  tables.reserve(rows.size());
  for (const auto& row : rows) {
    TableState t;
    t.oid = static_cast<std::uint32_t>(row[0].as<std::int64_t>());
    t.exported = row[12].as<bool>();
    if (t.exported) {
      t.schema = row[1].as<std::string>();
      t.table = row[2].as<std::string>();
      // An excluded table is not reported, but its bytes are still the database's.
      t.exported =
          Selected(t.schema, selection.include_schemas, selection.exclude_schemas) &&
          Selected(t.schema + "." + t.table, selection.include_tables, selection.exclude_tables);
      if (!t.exported) {
        t.schema.clear();
        t.table.clear();
      }
    }
    t.live_rows = NonNegative(row[3].as<std::int64_t>());
    t.rows_inserted = NonNegative(row[4].as<std::int64_t>());
    Signature signature;
    for (int column = 4; column <= 11; ++column) {
      signature.Add(static_cast<std::uint64_t>(row[column].as<std::int64_t>()));
    }
    // A statistics reset (or a crash, which discards the statistics) restarts the counters:
    // afterwards they could repeat values measured under other sizes.
    signature.Add(sample.stats_reset_unix_seconds.value_or(0));
    signature.Add(sample.postmaster_start_unix_seconds);
    t.signature = signature.value();
    tables.push_back(std::move(t));
  }
  return tables;
}

// The sizes of the `planned` relations. A failure (a lock taken after its check,
// statement_timeout) leaves the transaction usable, and the tables keep their last exact sizes;
// `error` says why (first line), for the sample's error if a never-measured table is among them.
struct SizeAttempt {
  SizeMeasurement measurement;
  std::string error;
};
SizeAttempt MeasureSizes(pqxx::read_transaction& tx, const std::vector<std::uint32_t>& planned) {
  SizeAttempt attempt;
  SizeMeasurement& measurement = attempt.measurement;
  std::string& error = attempt.error;
  if (planned.empty()) return attempt;
  try {
    pqxx::subtransaction sub(tx, "sizes");
    const auto size_rows = sub.exec_prepared(kRelationSizes, OidArray(planned));
    for (const auto& row : size_rows) {
      const auto oid = static_cast<std::uint32_t>(row[0].as<std::int64_t>());
      if (row[1].as<bool>()) {
        measurement.locked.push_back(oid);
      } else if (!row[2].is_null() && !row[3].is_null() && !row[4].is_null()) {
        measurement.sizes.push_back(
            MeasuredSize{.oid = oid,
                         .table_bytes = NonNegative(row[2].as<std::int64_t>()),
                         .index_bytes = NonNegative(row[3].as<std::int64_t>()),
                         .toast_bytes = NonNegative(row[4].as<std::int64_t>())});
      }  // NULL sizes: dropped while being measured
    }
    sub.commit();
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::sql_error& e) {
    measurement = SizeMeasurement{.ok = false, .sizes = {}, .locked = {}};
    error = e.what();
    if (auto newline = error.find('\n'); newline != std::string::npos) error.resize(newline);
    Log(LogLevel::kWarn, "postgres",
        "table sizes not measured this sample, the last exact ones are kept: " + error);
  }
  return attempt;
}

}  // namespace

CatalogSample ReadCatalog(pqxx::connection& connection, const TableSelection& selection,
                          TableSizeCache& sizes) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
  // Registered once per connection (the same definition again is a no-op); libpqxx prepares each
  // on first use, also on a connection it reopened.
  connection.prepare(kDatabaseState, kDatabaseStateQuery);
  connection.prepare(kRelationState, kRelationStateQuery);
  connection.prepare(kRelationSizes, kRelationSizesQuery);
  connection.prepare(kDatabaseSize, kDatabaseSizeQuery);
  CatalogSample sample;
  pqxx::read_transaction tx(connection);
  ReadDatabaseState(tx, sample);
  auto tables = ReadRelationStates(tx, selection, sample);
  const auto planned = sizes.Plan(tables, now);
  const auto [measurement, size_error] = MeasureSizes(tx, planned);
  auto complete =
      sizes.Complete(std::move(tables), planned, measurement, now, &sample.tables_size_measured);
  if (!complete) {
    throw std::runtime_error(
        "a relation never measured before could not be measured now (" +
        (size_error.empty() ? std::string("locked by another session") : size_error) + ")");
  }
  sample.tables = std::move(*complete);
  // pg_database_size walks the database's directory: measured after a full sample that measured
  // every relation in this transaction, so what it counts beyond them is exact; without one (a
  // relation locked or failing each time) only when it would otherwise be missing or overdue.
  if (sizes.FullSampleCompleted() || sizes.DatabaseSizeOverdue(now)) {
    const auto size = tx.exec_prepared(kDatabaseSize);
    sizes.SetDatabaseSize(NonNegative(size[0][0].as<std::int64_t>()), now);
  }
  sample.database_size_bytes = *sizes.DatabaseSize();
  tx.commit();
  return sample;
}

PostgresCatalogCollector::PostgresCatalogCollector(const PostgresConfig& config,
                                                   std::chrono::milliseconds interval)
    : config_(config),
      interval_(interval),
      selection_{config.include_schemas, config.exclude_schemas, config.include_tables,
                 config.exclude_tables, config.max_table_series},
      sizes_(config.size_max_age, interval),
      session_("postgres", config, config.statement_timeout, kCatalogStatements) {}

SampleResult PostgresCatalogCollector::Sample() {
  CatalogSample sample;
  auto error =
      session_.Run([&](pqxx::connection& c) { sample = ReadCatalog(c, selection_, sizes_); });
  if (!error.empty()) return SampleResult{DownFamilies(), false, std::move(error)};
  return SampleResult{CatalogFamilies(sample, selection_), true, ""};
}

PostgresExactCountCollector::PostgresExactCountCollector(const PostgresConfig& config)
    : config_(config), session_("postgres_exact_count", config, config.exact_count_timeout) {}

std::vector<prometheus::MetricFamily> PostgresCatalogCollector::OverdueFamilies() const {
  return DownFamilies();
}

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
